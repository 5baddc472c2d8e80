"""Figure of the ideal-models stage: samples from the same noises (one row per model), the distribution of
the per-noise r^2 against each network, the denoiser r^2 along the trajectory and the calibrated P(t)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from diffusion_regimes.plots import STYLE, plt

ROW_LABELS = {"exact": "exact score", "ls": "LS", "els": "ELS"}
MODEL_COLOURS = {"exact": "tab:red", "ls": "tab:blue", "els": "tab:green"}


def _label(model: str) -> str:
    kind, _, network = model.partition(":")
    if kind.startswith("unet_"):
        return f"UNet {kind[5:]}"
    return ROW_LABELS.get(kind, kind) + (f" (P of {network})" if network else "")


def _colour(model: str) -> str:
    return MODEL_COLOURS.get(model, "tab:purple" if model.startswith("unet_") else "tab:gray")


def ideal_models_figure(*, grid: Mapping[str, torch.Tensor], channel_means: torch.Tensor,
                        per_sample: pd.DataFrame, trajectory: pd.DataFrame, calibration: pd.DataFrame,
                        reference: str, title: str):
    """Left: a grid with one row per model (networks, exact score, LS and ELS with each network's P(t))
    and one column per noise.  Right, one column of panels per network: r^2 of each model's samples
    against that network (box plots over the noises), the median denoiser r^2 along the trajectory
    (quartile band), and the calibrated P(t) of LS and ELS."""
    rows = sorted(grid, key=lambda m: (not m.startswith("unet_"), m != "exact", m))
    networks = list(dict.fromkeys(per_sample["network"]))
    n_cols = max(t.shape[0] for t in grid.values())
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(4.6 + 3.6 * len(networks), 8.4), layout="constrained")
        spec = fig.add_gridspec(3, 1 + len(networks), width_ratios=[1.4] + [1.0] * len(networks))
        grid_ax = fig.add_subplot(spec[:, 0])
        columns = range(1, 1 + len(networks))
        axes = np.array([[fig.add_subplot(spec[r, c]) for c in columns] for r in range(3)])
    # the sample grid as one montage: rows = models, columns = noises, pixels in [0, 1]
    means = channel_means.to(torch.float32).reshape(-1, 1, 1)
    tiles = []
    for model in rows:
        imgs = (grid[model][:n_cols].to(torch.float32) + means).clamp(0, 1)
        tiles.append(torch.cat([im.mean(dim=0) for im in imgs], dim=1))
    side = grid[rows[0]].shape[-2]
    grid_ax.imshow(torch.cat(tiles, dim=0).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    grid_ax.set_yticks([side * (i + 0.5) for i in range(len(rows))], [_label(m) for m in rows], fontsize=7)
    grid_ax.set_xticks([side * (j + 0.5) for j in range(n_cols)], [str(j) for j in range(n_cols)], fontsize=7)
    grid_ax.set_xlabel("noise index (the same initial noise in every row)")
    grid_ax.grid(False)
    grid_ax.set_title("probability-flow ODE samples", fontsize=9)
    for c, network in enumerate(networks):
        ax_box, ax_traj, ax_p = axes[0, c], axes[1, c], axes[2, c]
        mine = per_sample[per_sample["network"] == network]
        models = list(dict.fromkeys(mine["model"]))
        data = [mine.loc[mine["model"] == m, "r2"].to_numpy() for m in models]
        box = ax_box.boxplot(data, orientation="horizontal", patch_artist=True, showfliers=True,
                             medianprops={"color": "black"})
        for patch, m in zip(box["boxes"], models, strict=True):
            patch.set_facecolor(_colour(m))
            patch.set_alpha(0.5)
        ax_box.set_yticks(range(1, len(models) + 1), [_label(m) for m in models], fontsize=8)
        lowest = min(float(np.min(v)) for v in data)
        if lowest < -1.0:  # a few samples far off would squeeze the boxes; their count goes in the label
            ax_box.set_xlim(-1.0, 1.02)
            off = sum(int((v < -1.0).sum()) for v in data)
            ax_box.set_xlabel(f"pixelwise $r^2$ of the sample vs UNet {network} ({off} below -1 not shown)")
        else:
            ax_box.set_xlabel(f"pixelwise $r^2$ of the sample vs UNet {network}")
        ax_box.set_title(f"against UNet {network} ({mine['noise'].nunique()} noises)", fontsize=9)
        tr = trajectory[trajectory["network"] == network]
        for m in models:
            part = tr[tr["model"] == m].sort_values("t")
            ax_traj.plot(part["t"], part["r2_median"], color=_colour(m), label=_label(m))
            ax_traj.fill_between(part["t"], part["r2_q25"], part["r2_q75"], color=_colour(m), alpha=0.15)
        ax_traj.set_xscale("log")
        ax_traj.set_xlabel("t (probability-flow ODE time)")
        ax_traj.set_ylabel("denoiser $r^2$ vs UNet (median, IQR)")
        ax_traj.set_ylim(-0.5, 1.02)
        ax_traj.legend(fontsize=7)
        cal = calibration[(calibration["network"] == network) & calibration["chosen"]]
        for kind in ("ls", "els"):
            part = cal[cal["model"] == kind].sort_values("t")
            ax_p.plot(part["t"], part["P"], "o-", color=_colour(kind), label=_label(kind))
        ax_p.set_xscale("log")
        ax_p.set_xlabel("t")
        ax_p.set_ylabel("calibrated patch side P(t)")
        ax_p.legend(fontsize=7)
    fig.suptitle(f"{title} (reference network for the bank study: {reference})", fontsize=10)
    return fig
