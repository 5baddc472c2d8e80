"""Figures of the memorisation stage (docs/science.md, "Training time"): one six-panel figure per dataset."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from diffusion_regimes.errors import DataError
from diffusion_regimes.plots import new_figure, save_figure

_STYLE = {"raw": "-", "ema": "--"}


def _colours(ns: list[int]) -> dict[int, tuple]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    return {n: cmap(i / max(len(ns) - 1, 1) * 0.9) for i, n in enumerate(ns)}


def memorisation_figure(table: pd.DataFrame, times: pd.DataFrame, *, dataset: str):
    """Six panels for ``dataset`` (main width, every seed):

    memorised fraction vs steps and vs steps / n (raw solid, EMA dashed; 95 % bootstrap bands on the raw
    weights); tau_mem and tau_gen vs n in log-log with the fitted power laws; the generalisation gap (held
    out minus training denoising loss, +- 2 standard errors); the learned mean t̂_C vs steps beside the
    exact score's (horizontal lines, same n); the classifier-confident fraction vs steps with the gate.
    """
    rows = table[table["dataset"] == dataset]
    if rows.empty:
        raise DataError(f"the memorisation table has no rows for dataset {dataset!r}")
    width = int(rows["width"].min())
    rows = rows[rows["width"] == width]
    tms = times[(times["dataset"] == dataset) & (times["width"] == width)]
    ns = sorted(int(n) for n in rows["n"].unique())
    colour = _colours(ns)
    fig, axes = new_figure(2, 3, figsize=(14, 8))
    ax_mem, ax_scaled, ax_tau, ax_gap, ax_tc, ax_conf = axes.ravel()
    for (n, seed, kind), g in rows.groupby(["n", "seed", "weights"]):
        g = g.sort_values("step")
        label = f"n = {n}" if (kind == "raw" and seed == rows[rows["n"] == n]["seed"].min()) else None
        style = dict(color=colour[int(n)], ls=_STYLE[kind], marker="o" if kind == "raw" else None, ms=3)
        ax_mem.plot(g["step"], g["memorised_fraction"], label=label, **style)
        ax_scaled.plot(g["step"] / n, g["memorised_fraction"], label=label, **style)
        ax_tc.plot(g["step"], g["t_c_hat_mean"], label=label, **style)
        ax_conf.plot(g["step"], g["confident_fraction"], label=label, **style)
        if kind == "raw":
            ax_mem.fill_between(g["step"], g["memorised_low"], g["memorised_high"], color=colour[int(n)],
                                alpha=0.15, lw=0)
            ax_gap.errorbar(g["step"], g["generalisation_gap"], yerr=2 * g["gap_se"], color=colour[int(n)],
                            marker="o", ms=3, capsize=2, label=label)
            ax_tc.axhline(float(g["t_c_hat_exact_mean"].iloc[0]), color=colour[int(n)], ls=":", lw=1.5)
    for ax in (ax_mem, ax_scaled, ax_tc, ax_conf, ax_gap):
        ax.set_xscale("log")
    ax_mem.set(xlabel="optimiser steps", ylabel="memorised fraction (d1/d2 < 1/3)",
               title="memorisation (solid raw, dashed EMA; band: 95 % bootstrap)", ylim=(-0.03, 1.03))
    ax_scaled.set(xlabel="optimiser steps / n", ylabel="memorised fraction",
                  title="rescaled time: one curve if tau_mem ∝ n", ylim=(-0.03, 1.03))
    ax_gap.axhline(0.0, color="k", lw=0.8)
    ax_gap.set(xlabel="optimiser steps", ylabel="loss(held out) - loss(train)",
               title="generalisation gap (raw weights, ±2 s.e.)")
    # an untrained network's trajectories never settle (t̂_C near the top of the grid): off the scale, so the
    # approach to the exact score's value stays readable
    exact = rows["t_c_hat_exact_mean"]
    top = 2.0 * float(np.nanmax(exact)) if exact.notna().any() else 1.0
    ax_tc.set(xlabel="optimiser steps", ylabel="mean t̂_C (learned)", ylim=(0.0, max(top, 0.5)),
              title="learned t̂_C; dotted: exact score, same n")
    if not tms.empty and math.isfinite(float(tms["gen_level"].iloc[0])):
        ax_conf.axhline(float(tms["gen_level"].iloc[0]), color="k", ls=":", lw=1, label="quality gate")
    ax_conf.set(xlabel="optimiser steps", ylabel="classifier-confident fraction",
                title="sample quality", ylim=(-0.03, 1.03))
    _tau_panel(ax_tau, tms)
    ax_mem.legend(fontsize=8)
    ax_conf.legend(fontsize=8)
    fig.suptitle(f"{dataset}: training time, UNet width {width} "
                 f"({int(rows['parameters'].iloc[0]) / 1e6:.2f} M parameters)")
    return fig


def _tau_panel(ax, tms: pd.DataFrame) -> None:
    markers = {"tau_mem": "o", "tau_gen": "s"}
    colours = {"raw": "C0", "ema": "C3"}
    for kind, g in tms.groupby("weights"):
        for name, marker in markers.items():
            ok = np.isfinite(g[name]) & g[f"{name}_censored"].isin(["none", "interval"])
            lo = (g[name] - g[f"{name}_low"]).clip(lower=0)
            hi = (g[f"{name}_high"] - g[name]).clip(lower=0)
            hi = hi.where(np.isfinite(hi), g[name])  # an unbounded end: drawn as a factor-2 arrow stub
            ax.errorbar(g.loc[ok, "n"], g.loc[ok, name], yerr=[lo[ok], hi[ok]], fmt=marker,
                        color=colours[kind], mfc="none" if name == "tau_gen" else colours[kind], capsize=2,
                        label=f"{name} {kind}")
            right = g[f"{name}_censored"] == "right"
            if right.any():  # lower bounds: never reached within the series
                ax.scatter(g.loc[right, "n"], g.loc[right, f"{name}_low"], marker="^", color=colours[kind])
            exponent = "gamma" if name == "tau_mem" else "gamma_gen"
            gamma = float(g[exponent].iloc[0])
            if math.isfinite(gamma) and ok.sum() >= 2:
                n_line = np.geomspace(g["n"].min(), g["n"].max(), 20)
                x, y = np.log(g.loc[ok, "n"]), np.log(g.loc[ok, name])
                c = float(np.exp(np.mean(y - gamma * x)))
                ax.plot(n_line, c * n_line**gamma, color=colours[kind], ls=_STYLE[kind], lw=1,
                        label=f"{exponent} {kind} = {gamma:.2f} [{float(g[exponent + '_low'].iloc[0]):.2f}, "
                              f"{float(g[exponent + '_high'].iloc[0]):.2f}]")
    ax.set(xscale="log", yscale="log", xlabel="training-set size n", ylabel="optimiser steps",
           title="tau_mem (filled), tau_gen (open); ^ = not reached")
    ax.legend(fontsize=7)


def memorisation_figures(*, table: str | Path, times: str | Path, dataset: str, out: str | Path,
                         seed: int) -> list[Path]:
    """The ``memorisation-figures`` job: the figure of ``dataset`` as ``out`` (.pdf) and .png."""
    frame, tms = pd.read_csv(table), pd.read_csv(times)
    fig = memorisation_figure(frame, tms, dataset=dataset)
    return save_figure(fig, out, config={"dataset": dataset, "table": str(table), "times": str(times)},
                       seed=seed)
