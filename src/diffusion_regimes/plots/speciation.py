"""Figures of the speciation stage: t_S against log d for the Gaussian mixtures, the four-class agreement
curves, and the predictors of t_S against measurement on real pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from diffusion_regimes.measures import PHI_SPECIATION_LEVEL
from diffusion_regimes.plots import new_figure

_FAMILY_LABELS = {
    "equal_mean": "equal means, $v_\\pm$ on all $d$ axes",
    "equal_mean_subspace": "equal means, $v_\\pm$ on $k = f d$ axes",
    "mean_separated": "means $\\pm m$ (paper), control",
    "nested_group": "nested: group level",
    "nested_class": "nested: class level (same group)",
}


def gm_figure(curves: pd.DataFrame, times: pd.DataFrame, slopes: pd.DataFrame):
    """Left: measured t_S (0.775 crossing, 95 % interval) against log d per family, with the closed-form
    crossings (lines) and the fitted slope in the legend.  Right: phi(t) at the largest d with theory."""
    fig, (ax, bx) = new_figure(1, 2, figsize=(10.5, 4.2))
    reduced = times[times["engine"] == "reduced"]
    slope_of = slopes.set_index("family")
    for i, (family, part) in enumerate(reduced.groupby("family", sort=False)):
        color = f"C{i}"
        x = np.log(part["d"].to_numpy(dtype=float))
        y = part["t_S"].to_numpy()
        err = np.stack([y - part["low"].to_numpy(), part["high"].to_numpy() - y])
        label = _FAMILY_LABELS.get(family, family)
        if family in slope_of.index:
            s = slope_of.loc[family]
            label += f": slope {s['slope']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"
        ax.errorbar(x, y, yerr=np.abs(err), fmt="o", ms=4, color=color, capsize=2, label=label)
        ax.plot(x, part["t_s_theory"], color=color, lw=1.0)
    full = times[times["engine"] == "full"]
    if len(full):
        ax.plot(
            np.log(full["d"].to_numpy(dtype=float)), full["t_S"], "kx", ms=7, label="full-$d$ engine check"
        )
    ax.plot([], [], color="0.3", lw=1.0, label="closed form (crossing of exact $\\phi$)")
    ax.set_xlabel("$\\log d$")
    ax.set_ylabel("$t_S$ (cloning $\\phi = 0.775$)")
    ax.set_title("speciation time against dimension", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    d_big = curves[curves["engine"] == "reduced"]["d"].max()
    for i, (family, part) in enumerate(
        curves[(curves["engine"] == "reduced") & (curves["d"] == d_big)].groupby("family", sort=False)
    ):
        color = f"C{i}"
        bx.errorbar(
            part["t"],
            part["phi"],
            yerr=part["stderr"],
            fmt="o",
            ms=2.5,
            color=color,
            capsize=1,
            label=_FAMILY_LABELS.get(family, family),
        )
        bx.plot(part["t"], part["phi_theory"], color=color, lw=1.0)
    bx.axhline(PHI_SPECIATION_LEVEL, color="0.3", ls="--", lw=0.9)
    bx.set_xlabel("$t$")
    bx.set_ylabel("$\\phi(t)$ (same class / same group)")
    bx.set_title(f"cloning curves at $d = {int(d_big)}$ (lines: closed form)", fontsize=10)
    bx.legend(fontsize=7, loc="upper right")
    return fig


def groups_figure(curves: pd.DataFrame):
    """Four-class agreement: same group, same class, same class among same-group pairs; points measured
    (exact score), lines the Gaussian-class predictions."""
    fig, ax = new_figure(figsize=(5.8, 4.2))
    for i, (name, label) in enumerate(
        (("group", "same group"), ("class", "same class"), ("within", "same class | same group"))
    ):
        ax.errorbar(
            curves["t"],
            curves[f"phi_{name}"],
            yerr=curves[f"phi_{name}_se"],
            fmt="o",
            ms=3.5,
            color=f"C{i}",
            capsize=2,
            label=f"{label} (exact score)",
        )
        ax.plot(curves["t"], curves[f"pred_{name}"], color=f"C{i}", lw=1.1)
    ax.plot([], [], color="0.3", lw=1.1, label="Gaussian-class prediction")
    ax.axhline(PHI_SPECIATION_LEVEL, color="0.3", ls="--", lw=0.9)
    ax.set_xlabel("branch time $t$")
    ax.set_ylabel("fraction of clone pairs")
    ax.set_title(f"four-class Fashion-MNIST subset ({int(curves['pairs'].iloc[0])} pairs)", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper right")
    return fig


def predictor_figure(table: pd.DataFrame, rms: pd.DataFrame):
    """Predicted t_S against the measured crossing, one panel per predictor, identity line, RMS in the
    title (95 % bootstrap interval over pairs)."""
    from diffusion_regimes.speciation import PREDICTORS

    fig, axes = new_figure(1, len(PREDICTORS), figsize=(4.0 * len(PREDICTORS), 4.0), sharey=True)
    measured = table.dropna(subset=["t_s_crossing"])
    values = measured[["t_s_crossing", *PREDICTORS]].to_numpy(dtype=float)
    lo, hi = (np.nanmin(values) - 0.1, np.nanmax(values) + 0.1) if values.size else (0.0, 2.0)
    for ax, (column, name) in zip(np.atleast_1d(axes), PREDICTORS.items(), strict=True):
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.9, label="identity")
        x = measured["t_s_crossing"].to_numpy()
        xerr = np.abs(
            np.stack(
                [x - measured["t_s_crossing_low"].to_numpy(), measured["t_s_crossing_high"].to_numpy() - x]
            )
        )
        ax.errorbar(x, measured[column], xerr=xerr, fmt="o", ms=4, capsize=2, color="C0")
        for row in measured.itertuples():
            ax.annotate(
                f"{row.class_a}/{row.class_b}",
                (row.t_s_crossing, getattr(row, column)),
                fontsize=5.5,
                xytext=(3, 2),
                textcoords="offset points",
            )
        r = rms[(rms["predictor"] == column) & (rms["against"] == "t_s_crossing")]
        title = (
            name
            if r.empty
            else f"{name}: RMS {r['rms'].iloc[0]:.3f} [{r['low'].iloc[0]:.3f}, {r['high'].iloc[0]:.3f}]"
        )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("measured $t_S$ (exact score, $\\phi = 0.775$)")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    np.atleast_1d(axes)[0].set_ylabel("predicted $t_S$")
    return fig
