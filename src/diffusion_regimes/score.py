"""Scores ``F(x, t) = grad_x log P_t(x)``: one callable interface for every model (see :mod:`sampler`).

* :class:`GaussianMixtureScore`: closed form for two Gaussian clusters (docs/science.md section 3);
* :class:`EmpiricalScore`: the exact score of the noised empirical distribution of a training set, the
  "ideal" model of docs/science.md section 5 (chunked online softmax; float32 products with float64
  accumulation where the error bound allows, or float64 throughout);
* :class:`NoisePredictorScore`: adapter turning a DDPM noise predictor ``eps_model(x, k)`` into a score.

Sweeps run on image-shaped tensors ``(B, C, H, W)`` (what the network takes); the empirical score
flattens internally, so both models go through the same sampler code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import torch

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.online_softmax import float32_logit_error, online_softmax
from diffusion_regimes.schedule import DDPMSchedule, delta_t


def gamma_t(t: float, sigma: float) -> float:
    """``Gamma_t = Delta_t + sigma^2 e^{-2t}``: variance of each noised cluster (docs/science.md
    section 3)."""
    return float(delta_t(t)) + sigma**2 * math.exp(-2.0 * t)


@dataclass(frozen=True)
class GaussianMixtureScore:
    """Exact score of ``P_t`` for two equal-weight clusters ``N(+-m, sigma^2 I)`` (docs/science.md section 3).

    ``F(x, t) = m (e^{-t}/Gamma_t) tanh((e^{-t}/Gamma_t) x.m) - x/Gamma_t`` for ``x`` of shape ``(B, d)``.
    With ``m`` of shape ``(1,)`` holding ``|m|`` this is the exact score of the projection ``q = m.x/|m|``
    (the reduced, one-dimensional engine).
    """

    m: torch.Tensor  # (d,)
    sigma: float = 1.0

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        g = gamma_t(t, self.sigma)
        c = math.exp(-t) / g
        m = self.m.to(dtype=x.dtype, device=x.device)
        proj = x @ m  # (B,)
        return torch.tanh(c * proj).unsqueeze(-1) * (c * m) - x / g


def _check_time(t: float) -> None:
    if not t > 0.0:
        raise ValueError(f"the empirical score is singular at t = {t}; evaluate it only at t > 0")


PRECISIONS = ("mixed", "float64")
"""Arithmetic of :class:`EmpiricalScore`: ``mixed`` (float32 products where the error bound allows,
float64 accumulation; the default) or ``float64`` (the reference)."""


@dataclass(frozen=True)
class EmpiricalScore:
    """Exact score of the noised empirical distribution of a training set (docs/science.md sections 1, 5).

    ``P_t^e(x) = (1/n) sum_mu N(x; a_mu e^{-t}, Delta_t I)`` gives
    ``F(x, t) = (e^{-t} sum_mu w_mu(x) a_mu - x) / Delta_t`` with softmax weights
    ``w_mu ∝ exp(-|x - a_mu e^{-t}|^2 / (2 Delta_t))``: the "ideal" model that memorises at t -> 0.

    ``data``: training points ``(n, d)`` (flattened images).  ``x`` may have any shape ``(B, ...)`` with
    ``prod(...) = d`` (image-shaped sweeps pass ``(B, C, H, W)``); the result has the shape and dtype of
    ``x``.  The training set is processed in chunks of rows so that the ``(B, chunk)`` logits block stays
    below ``max_chunk_bytes``, with an online (streaming) softmax across chunks
    (:func:`online_softmax.online_softmax`), so memory does not grow with n and chunking does not change
    the result beyond rounding.

    Precision.  ``precision="float64"``: all arithmetic float64 (the reference).  ``precision="mixed"``
    (default): the two matmuls (the cross term ``x.a`` of the logits and the weighted sum ``w @ a``) run in
    float32, at the float32 matmul rate, while the running max, the sums and the rescaling across chunks
    are float64 (:mod:`online_softmax`).  The float32 cross term errs by
    ``|delta l| <~ epsilon(t) = u [(sqrt(d) + 2) e^{-t} |x| |a| + e^{-2t} |a|^2] / Delta_t``
    (:func:`online_softmax.float32_logit_error`, ``u = 2^-24``; ``|x|``, ``|a|``: largest norms of the
    batch and of the training points): the rounding error of the float32 product relative to Delta_t.  It
    moves each softmax weight by a factor within ``e^{+-2 epsilon}`` and the posterior mean
    ``m = sum w a`` by ``<= 2 epsilon sum_mu w_mu |a_mu - m|``, hence the score by

        |delta F| <= e^{-t} / Delta_t [2 epsilon sum_mu w_mu |a_mu - m| + (sqrt(n) + 2) u max_mu |a_mu|],

    the second term being the float32 weighted sum (accumulation over a chunk of at most n points, random
    signs) and the float32 copy of the data.  The fast path is taken for a call only when
    ``epsilon(t) <= logit_tol`` (default 1e-2: weights within 2 %, a score error below 2 % of the
    between-training-point part ``e^{-t} sum w |a - m| / Delta_t`` of the score); otherwise the call runs
    in float64.  At the smallest DDPM time ``t(k=1) ~ 5e-5`` (``Delta_t ~ 1e-4``) on the MNIST 1/8 subset
    (d = 1024, centred pixels, ``|a|^2`` 68 on average, 182 at most) ``epsilon ~ 3`` (largest error
    measured on noised training points: 0.4): float32 logits could move the weights by factors up to
    ``e^{+-6}``, harmless where the posterior is one-hot (logit gaps ``~|a_mu - a_nu|^2 / (2 Delta_t)``,
    ~1e5) but not for states near a tie, so such times run in float64.  On that subset the switch happens
    at ``t ~ 0.01-0.02`` (DDPM k ~ 35-60): the last ~5 % of a 1000-step trajectory.  (The estimate is
    ~10x the measured error there; the worst-case bound with ``gamma_d = d u`` would be 30x larger.)
    :meth:`log_density` is always float64 (it is differentiated, and used at the reference's accuracy).
    """

    data: torch.Tensor  # (n, d)
    max_chunk_bytes: int = 256 * 2**20
    precision: str = "mixed"
    logit_tol: float = 1e-2

    def __post_init__(self) -> None:
        if self.data.dim() != 2:
            raise ValueError(f"data must be (n, d), got shape {tuple(self.data.shape)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"EmpiricalScore precision {self.precision!r} is not valid; choose one of "
                              f"{list(PRECISIONS)}")
        if not self.logit_tol > 0.0:
            raise ConfigError(f"EmpiricalScore logit_tol must be > 0, got {self.logit_tol}")
        data = self.data.to(torch.float64)
        object.__setattr__(self, "data", data)
        # |a_mu|^2 once: the distance matrix is |x|^2 + |a|^2 e^{-2t} - 2 e^{-t} x.a (one matmul per chunk)
        sq_norms = (data * data).sum(dim=1)
        object.__setattr__(self, "_sq_norms", sq_norms)
        object.__setattr__(self, "_a_norm", float(sq_norms.max().sqrt()))
        # the float32 operand of the fast path, made once (None for the float64 reference)
        object.__setattr__(self, "_data32", data.to(torch.float32) if self.precision == "mixed" else None)

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    @property
    def d(self) -> int:
        return int(self.data.shape[1])

    def _chunk_rows(self, batch: int) -> int:
        # the (B, chunk) logits block and its exp: at most 16 bytes per entry (float64)
        return max(1, min(self.n, self.max_chunk_bytes // max(1, 16 * batch)))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1).to(device=self.data.device, dtype=torch.float64)
        if flat.shape[1] != self.d:
            raise ValueError(f"x has {flat.shape[1]} variables per sample, the training set has d = {self.d}")
        return flat

    def logit_error(self, x: torch.Tensor, t: float) -> float:
        """The float32 logit error estimate ``epsilon(t)`` (class docstring) for the batch ``x (B, ...)``."""
        x_norm = float(x.reshape(x.shape[0], -1).to(torch.float64).norm(dim=1).max()) if x.shape[0] else 0.0
        return float32_logit_error(d=self.d, x_norm=x_norm, a_norm=self._a_norm, t=t)

    def uses_float32(self, x: torch.Tensor, t: float) -> bool:
        """Whether ``self(x, t)`` takes the float32 fast path (``mixed`` and ``epsilon(t) <= logit_tol``)."""
        return self.precision == "mixed" and self.logit_error(x, t) <= self.logit_tol

    def _stream(self, flat: torch.Tensor, t: float, *, weighted_mean: bool, fast: bool = False):
        """Online log-sum-exp of the logits ``-(|a e^{-t}|^2 - 2 e^{-t} x.a) / (2 Delta_t)`` over chunks.

        Returns float64 ``(running max (B,), sum of exp(logit - max) (B,), weighted sum of a (B, d) or
        None)``.  The ``|x|^2`` term is constant per row and is left out (added back by :meth:`log_density`).
        ``fast``: float32 operands (the caller checked the error bound).
        """
        decay = math.exp(-t)
        dt = float(delta_t(t))
        bias = -(decay * decay) * self._sq_norms / (2.0 * dt)  # (n,) float64
        if fast:
            x_mm, a_mm, bias = flat.to(torch.float32), self._data32, bias.to(torch.float32)
        else:
            x_mm, a_mm = flat, self.data
        return online_softmax(x_mm, a_mm, alpha=decay / dt, bias=bias, cols=self._chunk_rows(flat.shape[0]),
                              weighted_mean=weighted_mean)

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """``F(x, t)`` for ``x`` of shape ``(B, ...)``; same shape and dtype as ``x``."""
        _check_time(t)
        flat = self._flat(x)
        _, run_sum, run_vec = self._stream(flat, t, weighted_mean=True, fast=self.uses_float32(flat, t))
        dt = float(delta_t(t))
        # F = (e^{-t} m - x) / Delta_t with posterior mean m = run_vec / run_sum, in place on run_vec
        score = run_vec.mul_((math.exp(-t) / dt / run_sum)[:, None]).sub_(flat, alpha=1.0 / dt)
        return score.to(device=x.device, dtype=x.dtype).reshape(x.shape)

    def log_density(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """``log P_t^e(x)`` for ``x`` of shape ``(B, ...)``, float64 ``(B,)`` (differentiable in ``x``)."""
        _check_time(t)
        flat = self._flat(x)
        run_max, run_sum, _ = self._stream(flat, t, weighted_mean=False)
        dt = float(delta_t(t))
        lse = run_max + torch.log(run_sum)
        return lse - (flat * flat).sum(dim=1) / (2.0 * dt) - math.log(self.n) - 0.5 * self.d * math.log(
            2.0 * math.pi * dt
        )


class NoisePredictor(Protocol):
    """A DDPM denoiser: ``eps_model(x (B, C, H, W) float32, k (B,) long) -> eps`` of the shape of ``x``."""

    def __call__(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor: ...


CPU_MICRO_BATCH = 64
"""Images per network call of :class:`NoisePredictorScore` on a CPU (the fastest of 16-512, measured)."""


@dataclass(frozen=True)
class NoisePredictorScore:
    """Adapter: a noise-predicting network as a score ``score(x, t)`` (docs/science.md section 1).

    ``F(x, t) = -eps(x, k) / sqrt(1 - alpha_bar(k))`` with ``k = schedule.step_of_time(t)`` (exact on the
    DDPM grid, where the sampler evaluates it).  The one adapter of the package: training sample grids,
    the UNet benchmark and the learned-score sweeps all go through it.

    ``x`` may be image-shaped ``(B, C, H, W)`` or flat ``(B, d)``; it is reshaped to ``(B, *image_shape)``
    and cast to the network's ``dtype`` and ``device`` (``None``: the device of ``x``), and the score comes
    back in the shape, dtype and device of ``x``.  ``autocast_bf16`` runs the network under bfloat16
    autocast (GPU only).  Evaluated without gradients; the model must already be in eval mode (the adapter
    never changes its state).

    ``micro_batch``: the network sees at most this many images per call (``None``: :data:`CPU_MICRO_BATCH`
    on a CPU, the whole batch on a GPU).  On a CPU the convolutions' working set outgrows the caches at
    large batches: through this adapter the ``digits`` UNet evaluates 256 images at about 350 images/s in
    pieces of 64 and 220 in one call (2 threads), so a cloning sweep's batches are cut into pieces.
    """

    eps_model: NoisePredictor
    image_shape: tuple[int, ...]
    schedule: DDPMSchedule = field(default_factory=DDPMSchedule)
    device: torch.device | str | None = None
    dtype: torch.dtype = torch.float32
    autocast_bf16: bool = False
    micro_batch: int | None = None

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        k = self.schedule.step_of_time(t)
        if k < 1:
            raise ValueError(f"t = {t} maps to DDPM step 0 (clean data), where the score is undefined")
        device = torch.device(self.device) if self.device is not None else x.device
        inp = x.reshape(x.shape[0], *self.image_shape).to(device=device, dtype=self.dtype)
        piece = self.micro_batch or (CPU_MICRO_BATCH if device.type == "cpu" else inp.shape[0])
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                             enabled=self.autocast_bf16):
            eps = torch.cat([
                self.eps_model(part, torch.full((part.shape[0],), k, dtype=torch.long, device=device))
                for part in inp.split(max(int(piece), 1))
            ])
        scale = math.sqrt(1.0 - float(self.schedule.alpha_bar[k]))
        return (-eps.to(torch.float64) / scale).to(device=x.device, dtype=x.dtype).reshape(x.shape)
