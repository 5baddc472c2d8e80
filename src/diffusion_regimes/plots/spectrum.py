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
