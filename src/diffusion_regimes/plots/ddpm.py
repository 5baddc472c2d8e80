"""Figures of the learned denoiser: training loss and a grid of ancestral samples."""

from __future__ import annotations

import math

import numpy as np
import torch

from diffusion_regimes.plots import new_figure


def image_grid(images: torch.Tensor, *, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile ``images`` ``(n, C, H, W)`` with values in [0, 1] into one ``(rows H', cols W', C)`` array."""
    n, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), dtype=np.float32)
    arr = images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top: top + h, left: left + w] = arr[i]
    return grid


def samples_figure(pixels: torch.Tensor, *, title: str):
    """A grid of sampled images ``(n, C, H, W)`` in [0, 1] (gray for one channel)."""
    grid = image_grid(pixels)
    fig, ax = new_figure(figsize=(4, 4))
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title)
    return fig


def training_figure(steps: np.ndarray, losses: np.ndarray, pixels: torch.Tensor, *, title: str):
    """Left: noise-prediction loss vs optimiser step (points, log scale); right: samples at the last step."""
    fig, (ax_loss, ax_img) = new_figure(1, 2, figsize=(8, 3.6), width_ratios=(1.3, 1))
    ax_loss.plot(steps, losses, "o", ms=3, label="training loss (mean over log interval)")
    ax_loss.axhline(1.0, color="gray", ls="--", lw=1, label=r"predict $\xi = 0$ (loss 1)")
    ax_loss.set_xlabel("optimiser step")
    ax_loss.set_ylabel(r"$\| \xi - \xi_\theta(x(k), k) \|^2 / d$")
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=8)
    ax_img.set_axis_off()
    if len(pixels):
        grid = image_grid(pixels)
        ax_img.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
    ax_img.set_title(f"DDPM ancestral samples, step {int(steps[-1]) if len(steps) else 0}")
    fig.suptitle(title)
    return fig
