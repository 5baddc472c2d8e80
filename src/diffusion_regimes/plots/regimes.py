"""Figures of the cloning experiment on real data (paper Figs. 4 and 5 style) and the image strip."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from diffusion_regimes.plots import new_figure


def phi_figure(branches: Sequence[tuple[str, pd.DataFrame]], *, t_s_theory: float):
    """phi(t) against t / t_S (theory t_S = 1/2 log Lambda) for each (label, branch table)."""
    fig, ax = new_figure(figsize=(5.0, 3.6))
    for label, table in branches:
        ax.errorbar(table["t"] / t_s_theory, table["phi"], yerr=table["phi_se"], fmt="o-", ms=4, capsize=2,
                    label=label)
    ax.axvline(1.0, color="k", ls="--", lw=1, label=r"theory $t_S = \frac{1}{2}\log\Lambda$")
    ax.axhline(0.775, color="grey", ls=":", lw=1, label=r"$\phi = 0.775$")
    ax.set_xlabel(r"branch time $t / t_S$")
    ax.set_ylabel(r"cloning probability $\phi(t)$")
    ax.set_ylim(0.4, 1.03)
    ax.legend(fontsize=8)
    return fig


def collapse_figure(*, branches: pd.DataFrame, t_collapse: np.ndarray, entropy: pd.DataFrame | None,
                    t_c_entropy: float, title: str):
    """phi_C(t), the histogram of t̂_C and f^e(t)/alpha on a shared time axis (paper Fig. 5 style)."""
    fig, (top, bottom) = new_figure(2, 1, figsize=(5.0, 5.0), sharex=True)
    top.errorbar(branches["t"], branches["phi_c"], yerr=branches["phi_c_se"], fmt="o-", ms=4, capsize=2,
                 label=r"$\phi_C(t)$ (same nearest training point)")
    if entropy is not None:
        top.plot(entropy["t"], entropy["f_over_alpha"], "s--", ms=3, label=r"$f^e(t)/\alpha$")
    if np.isfinite(t_c_entropy):
        for ax in (top, bottom):
            ax.axvline(t_c_entropy, color="k", ls="--", lw=1)
    top.axhline(0.5, color="grey", ls=":", lw=1)
    top.set_ylabel(r"$\phi_C$, $f^e/\alpha$")
    top.set_title(title, fontsize=9)
    top.legend(fontsize=8)
    bottom.hist(t_collapse, bins=20, color="C2", alpha=0.8, label=r"$\hat t_C$ per trajectory")
    bottom.axvline(float(np.mean(t_collapse)), color="C2", lw=2, label=r"mean $\hat t_C$")
    bottom.set_xlabel(r"time $t$ (dashed: $t_C$ from $f^e$)")
    bottom.set_ylabel("trajectories")
    bottom.legend(fontsize=8)
    return fig


def strip_figure(strip: Sequence[tuple[int, float, torch.Tensor]], *, to_pixels, branch_row: int = -1):
    """Pair 0 along the sweep: the trunk (top row) and one clone (bottom row) at several times.

    ``strip``: ``(k, t, rows)`` with ``rows[0]`` the trunk and ``rows[1:]`` the clones alive at ``t``
    (in branch order: the clone from the largest branch time first).  ``to_pixels`` maps centred images
    ``(B, C, H, W)`` back to ``[0, 1]`` pixels.
    """
    fig, axes = new_figure(2, len(strip), figsize=(1.3 * len(strip), 3.0), squeeze=False)
    for j, (k, t, rows) in enumerate(strip):
        for r, label in ((0, "trunk"), (1, "clone")):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if r == 1 and rows.shape[0] < 2:
                ax.set_axis_off()
                continue
            img = to_pixels(rows[0 if r == 0 else 1][None].float())[0].clamp(0, 1)
            ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(f"t = {t:.2f}\nk = {k}", fontsize=8)
            if j == 0:
                ax.set_ylabel(label)
    return fig
