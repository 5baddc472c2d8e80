"""Figures of the cloning experiment on real data (paper Figs. 4 and 5 style) and the image strip."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from diffusion_regimes.plots import new_figure


MODEL_STYLE = {"exact": dict(marker="o", ls="-"), "unet": dict(marker="s", ls="--")}
"""Marker and line of each model, so the ideal and the learned model read apart on shared axes."""

MODEL_NAME = {"exact": "ideal (exact score)", "unet": "learned (UNet)"}


def _style(model: str) -> dict:
    return MODEL_STYLE.get(model, dict(marker="^", ls=":"))


def _label(model: str, n: int) -> str:
    return f"{MODEL_NAME.get(model, model)}, n = {n}"


def phi_figure(curves: Sequence[tuple[str, int, pd.DataFrame, float]], *, t_s_theory: float):
    """phi(t) against t / t_S (theory t_S = 1/2 log Lambda) for every (model, n, branch table, measured t_S).

    Theory as a vertical line, each model's measurement as points with bootstrap error bars and its
    measured t_S (phi = 0.775 crossing) as a short tick on the top axis.
    """
    fig, ax = new_figure(figsize=(5.4, 3.8))
    for i, (model, n, table, t_s) in enumerate(curves):
        colour = f"C{i}"
        measured = f", $t_S$ = {t_s:.2f}" if np.isfinite(t_s) else ""
        ax.errorbar(table["t"] / t_s_theory, table["phi"], yerr=table["phi_se"], ms=4, capsize=2,
                    color=colour, label=_label(model, n) + measured, **_style(model))
        if np.isfinite(t_s):
            ax.plot([t_s / t_s_theory], [1.02], marker="v", color=colour, ms=6, clip_on=False)
    ax.axvline(1.0, color="k", ls="--", lw=1,
               label=rf"theory $t_S = \frac{{1}}{{2}}\log\Lambda$ = {t_s_theory:.2f}")
    ax.axhline(0.775, color="grey", ls=":", lw=1, label=r"$\phi = 0.775$ (measured $t_S$, ticks on top)")
    ax.set_xlabel(r"branch time $t / t_S$")
    ax.set_ylabel(r"cloning probability $\phi(t)$")
    ax.set_ylim(0.4, 1.04)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def collapse_figure(*, curves: Sequence[tuple[str, int, pd.DataFrame, np.ndarray]],
                    entropy: pd.DataFrame | None, t_c_entropy: float, title: str):
    """phi_C(t) and the t̂_C histograms of every (model, n, branch table, t̂_C per trajectory), with
    f^e(t)/alpha and the t_C it implies, on a shared time axis (paper Fig. 5 style)."""
    fig, (top, bottom) = new_figure(2, 1, figsize=(5.4, 5.4), sharex=True)
    if entropy is not None:
        yerr = entropy["f_stderr"] / entropy["alpha"] if "f_stderr" in entropy else None
        top.errorbar(entropy["t"], entropy["f_over_alpha"], yerr=yerr, fmt="k.-", ms=3, lw=1, capsize=2,
                     label=r"$f^e(t)/\alpha$ (training set)")
    if np.isfinite(t_c_entropy):
        for ax in (top, bottom):
            ax.axvline(t_c_entropy, color="k", ls="--", lw=1)
    bins = None
    for i, (model, n, table, t_collapse) in enumerate(curves):
        colour = f"C{i}"
        top.errorbar(table["t"], table["phi_c"], yerr=table["phi_c_se"], ms=4, capsize=2, color=colour,
                     label=r"$\phi_C(t)$, " + _label(model, n), **_style(model))
        if bins is None:
            hi = max(float(np.max(t_collapse)) if len(t_collapse) else 1.0, float(table["t"].max()))
            bins = np.linspace(0.0, hi, 21)
        bottom.hist(t_collapse, bins=bins, histtype="step", lw=1.5, color=colour,
                    label=rf"$\hat t_C$, {MODEL_NAME.get(model, model)}: mean {np.mean(t_collapse):.2f}")
        bottom.axvline(float(np.mean(t_collapse)), color=colour, lw=2, ls=_style(model)["ls"])
    top.axhline(0.5, color="grey", ls=":", lw=1)
    top.set_ylabel(r"$\phi_C(t)$, $f^e(t)/\alpha$")
    top.set_ylim(-0.05, 1.1)
    top.set_title(title, fontsize=9)
    top.legend(fontsize=7)
    bottom.set_xlabel(r"time $t$ (dashed: $t_C$ where $f^e$ reaches 0)")
    bottom.set_ylabel(r"trajectories per $\hat t_C$ bin")
    bottom.legend(fontsize=7)
    return fig


def neighbours_figure(panels: Sequence[tuple[str, dict]], *, training: torch.Tensor, to_pixels,
                      rows: int = 6):
    """Generated samples at t = 0 beside their nearest and second-nearest training images (paper SI style).

    ``panels``: ``(title, record)`` per model, ``record`` as written by ``regimes-clone`` in samples.pt:
    ``samples (N, C, H, W)``, ``neighbours (N, 2)`` training indices, ``memorisation_ratio (N,)``.
    ``training``: ``(n, C, H, W)`` the centred training set; ``to_pixels`` maps it back to [0, 1].
    Each row is sample | 1st | 2nd nearest with the ratio d_1/d_2 (memorised below 1/3) printed beside it.
    """
    from diffusion_regimes.measures import MEMORISED_RATIO

    rows = min([rows] + [int(rec["samples"].shape[0]) for _, rec in panels])
    cols = 3 * len(panels)
    fig, axes = new_figure(rows, cols, figsize=(1.15 * cols + 0.4, 1.15 * rows + 0.6), squeeze=False)
    for p, (title, rec) in enumerate(panels):
        for r in range(rows):
            idx = rec["neighbours"][r]
            images = [rec["samples"][r], training[int(idx[0])], training[int(idx[1])]]
            ratio = float(rec["memorisation_ratio"][r])
            heads = ("sample", "1st nearest", "2nd nearest")
            for c, (img, head) in enumerate(zip(images, heads, strict=True)):
                ax = axes[r, 3 * p + c]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                pix = to_pixels(img[None].float())[0].clamp(0, 1).permute(1, 2, 0)
                ax.imshow(pix.squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
                if r == 0:
                    ax.set_title(f"{title}\n{head}" if c == 1 else head, fontsize=7)
                if c == 0:
                    copy = "copy" if ratio < MEMORISED_RATIO else "new"
                    ax.set_ylabel(f"$d_1/d_2$ = {ratio:.2f}\n({copy})", fontsize=7)
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
