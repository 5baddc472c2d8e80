"""Scree plot: leading covariance eigenvalues of one subset, with Λ and the Table 1 convention marked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from diffusion_regimes.plots import new_figure


def scree_figure(row: Mapping[str, Any]):
    """Eigenvalue λ_k against rank k (log scale), first channel and all channels."""
    fig, ax = new_figure(figsize=(4.5, 3.4))
    for key, label, marker in (("top_first_channel", "first channel (Table 1)", "o"),
                               ("top_all_channels", "all channels", "s")):
        values = np.asarray(row[key])
        if row["channels"] == 1 and key == "top_all_channels":
            continue  # identical to the first channel for grey-scale data
        ax.plot(np.arange(1, len(values) + 1), values, marker=marker, ms=3, lw=0.8, label=label)
    ax.axhline(1.0, color="grey", ls=":", lw=1, label=r"$\lambda_k = 1$ ($\frac{1}{2}\log\lambda_k = 0$)")
    ax.set_yscale("log")
    ax.set_xlabel("rank $k$")
    ax.set_ylabel(r"eigenvalue $\lambda_k$ of the covariance")
    ax.set_title(f"{row['dataset']} ({row['classes']}, n = {row['n']}): "
                 rf"$\Lambda$ = {row['lambda_first_channel']:.2f}", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def pair_figure(table, *, dataset: str):
    """Every pair of classes: does the top component carry the class difference, and which speciation
    time does that predict?  Left: top-component sign separation against λ₁/λ₂.  Right: ½ log λ_Δ (variance
    along the class-mean difference) against ½ log Λ, with the identity line."""
    fig, (left, right) = new_figure(1, 2, figsize=(9.0, 3.8))
    points = left.scatter(table["ratio_12"], table["sign_separation"], c=table["cos_delta"], cmap="viridis",
                          vmin=0, vmax=1, s=18)
    left.set_xscale("log")
    left.axhline(0.5, color="grey", ls=":", lw=1, label="chance")
    left.set_xlabel(r"$\lambda_1/\lambda_2$ of the pair's covariance")
    left.set_ylabel("fraction separated by the sign\nof the top component")
    left.legend(fontsize=8, loc="lower right")
    fig.colorbar(points, ax=left, label=r"$|\cos|$(top component, class-mean difference)")
    right.scatter(table["t_s_lambda"], table["t_s_delta"], c=table["cos_delta"], cmap="viridis", vmin=0,
                  vmax=1, s=18)
    low = float(min(table["t_s_lambda"].min(), table["t_s_delta"].min()))
    high = float(max(table["t_s_lambda"].max(), table["t_s_delta"].max()))
    right.plot([low, high], [low, high], color="grey", lw=1, ls="--", label="identity")
    right.set_xlabel(r"$\frac{1}{2}\log\Lambda$ (top eigenvalue)")
    right.set_ylabel(r"$\frac{1}{2}\log\lambda_\Delta$ (class-mean direction)")
    right.legend(fontsize=8, loc="upper left")
    # name the extremes: best and worst separated, and the strongest spike
    marked = {}
    extremes = (("best", table["sign_separation"].idxmax()), ("worst", table["sign_separation"].idxmin()),
                ("spike", table["ratio_12"].idxmax()))
    for label, index in extremes:
        marked.setdefault(index, label)
    for index, label in marked.items():
        row = table.loc[index]
        offset = (-14, -16) if label == "spike" else (8, 8 if label == "worst" else -16)
        left.annotate(f"{row['class_a']}/{row['class_b']}", (row["ratio_12"], row["sign_separation"]),
                      fontsize=7, xytext=offset, textcoords="offset points",
                      ha="right" if label == "spike" else "left", arrowprops={"arrowstyle": "-", "lw": 0.6})
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    ticks = [t for t in (1, 1.5, 2, 3, 4, 6, 8, 12, 16) if table["ratio_12"].min() / 1.2 <= t
             <= table["ratio_12"].max() * 1.2]
    left.xaxis.set_major_locator(FixedLocator(ticks))
    left.xaxis.set_minor_locator(NullLocator())
    left.xaxis.set_major_formatter(ScalarFormatter())
    fig.suptitle(f"{dataset}: all {len(table)} pairs of classes", fontsize=10)
    return fig
