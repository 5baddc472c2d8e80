"""The figures beyond the paper (law, U-turn, samplers) drawn from tables in their written layout."""

from __future__ import annotations

import numpy as np
import pandas as pd

from diffusion_regimes.law import LAW_COLUMNS
from diffusion_regimes.plots.regimes import law_figure, samplers_figure, uturn_figure
from diffusion_regimes.regimes import REGIMES_COLUMNS
from diffusion_regimes.uturn import UTURN_COLUMNS


def _law_table():
    rows = []
    for side, d in ((8, 64), (32, 1024)):
        for n in (25, 1000):
            t_c = 0.01 * d ** 0.5 / np.log(n)
            rows.append({c: 0.0 for c in LAW_COLUMNS} | {
                "dataset": "mnist", "resolution": side, "n": n, "d": d, "alpha": np.log(n) / d,
                "t_c_entropy": t_c, "t_c_entropy_low": 0.9 * t_c, "t_c_entropy_high": 1.1 * t_c,
                "t_c_phi_c_fit": 2 * t_c, "t_c_phi_c_fit_low": np.nan, "t_c_phi_c_fit_high": 2.2 * t_c,
                "t_c_hat_mean": 2.1 * t_c, "t_c_hat_se": 0.1 * t_c})
    return pd.DataFrame(rows)[list(LAW_COLUMNS)]


def test_law_figure_has_every_cell_and_the_identity_line():
    fig = law_figure(_law_table(), title="mnist")
    ax, ax_alpha = fig.axes
    assert ax.get_xscale() == "log" and "f^e" in ax.get_xlabel() and "alpha" in ax_alpha.get_xlabel()
    assert any(line.get_label() == "identity" for line in ax.get_lines())
    assert len(ax.texts) == 4  # one n label per cell (a missing interval end draws no bar, not an error)


def _uturn_table():
    rows = []
    for model, n, kinds in (("exact", 100, ("training", "held_out")), ("unet", 1000, ("training",))):
        for sampler in ("ddpm", "heun"):
            for kind in kinds:
                for t in (0.05, 0.5, 2.5):
                    rows.append({c: 0.0 for c in UTURN_COLUMNS} | {
                        "dataset": "mnist", "model": model, "sampler": sampler, "n": n, "starts_from": kind,
                        "t": t, "same_class": 1.0 if t < 1 else 0.5, "returned": 1.0 if t < 0.3 else 0.0,
                        "memorised": 1.0, "starts": 64, "class_prior": 0.5, "t_class_mid": 1.2,
                        "t_s_theory": 1.0, "t_c_entropy": 0.3})
    return pd.DataFrame(rows)[list(UTURN_COLUMNS)]


def test_uturn_figure_has_one_column_per_model_and_n():
    fig = uturn_figure(_uturn_table(), title="mnist")
    assert len(fig.axes) == 4  # 2 rows x (exact 100, unet 1000)
    top = fig.axes[0]
    assert top.get_xscale() == "log" and "class" in top.get_ylabel()
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert any("Heun" in s for s in labels) and any("held-out" in s for s in labels)


def test_samplers_figure_compares_every_model_and_sampler():
    rows = pd.DataFrame([{c: 0.0 for c in REGIMES_COLUMNS} | {
        "dataset": "mnist", "model": m, "sampler": s, "n": 1000, "t_c_hat_mean": 0.5, "t_c_hat_se": 0.02,
        "memorised_fraction": 1.0 if m == "exact" else 0.0, "t_s_fit": np.nan if s == "heun" else 1.0,
        "t_s_fit_low": 0.9, "t_s_fit_high": 1.1, "t_s_theory": 1.0}
        for m in ("exact", "unet") for s in ("ddpm", "euler_maruyama", "heun")])
    fig = samplers_figure(rows, _uturn_table(), title="mnist")
    assert len(fig.axes) == 3 and len(fig.axes[0].patches) == 6
