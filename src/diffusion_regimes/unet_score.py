"""Adapter from a noise-predicting network to the sampler's score interface (SCIENCE.md section 1).

``score(x, t) = -xi_theta(x, k) / sqrt(1 - alpha_bar(k))`` with ``k = schedule.step_of_time(t)``.
This minimal adapter serves the UNet training stage (sample grids, benchmark); it is meant to be folded
into ``score.NoisePredictorScore`` of the learned-score sweeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from diffusion_regimes.schedule import DDPMSchedule


@dataclass(frozen=True)
class UNetNoiseScore:
    """Score of a network ``model(x, k) -> xi`` (``x``: ``(B, C, H, W)``, ``k``: ``(B,)`` long).

    The network runs in float32 (optionally under bf16 autocast on a GPU); the score is returned in the
    dtype of ``x``.  ``model`` must already be in eval mode: the adapter never changes its state.
    """

    model: nn.Module
    schedule: DDPMSchedule
    autocast_bf16: bool = False

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        k = self.schedule.step_of_time(t)
        if k < 1:
            raise ValueError(f"the noise predictor is defined for DDPM steps k >= 1; t={t} maps to k=0")
        steps = torch.full((x.shape[0],), k, dtype=torch.long, device=x.device)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
            eps = self.model(x.float(), steps)
        return (-eps.float() / math.sqrt(1.0 - float(self.schedule.alpha_bar[k]))).to(x.dtype)
