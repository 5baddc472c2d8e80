"""Excess entropy density f^e(t) of a training set, and the collapse time read off it (docs/science.md
section 2).

For n training points ``a_mu`` (rows of ``data``, shape ``(n, d)``) and n' samples
``x_nu = a_mu(nu) e^{-t} + sqrt(Delta_t) xi_nu`` of the noised empirical distribution ``P_t^e``:

    s^e(t) = -(1/(n' d)) sum_nu log P_t^e(x_nu),   s_sep(t) = log(n)/d + 1/2 + 1/2 log(2 pi Delta_t),

and ``f^e = s_sep - s^e``.  Writing ``log P_t^e(x) = -log n - d/2 log(2 pi Delta_t) + L(x)`` with
``L(x) = logsumexp_mu(-|x - a_mu e^{-t}|^2 / (2 Delta_t))``, the constants cancel exactly and

    f^e(t) = mean_nu g_nu,   g_nu = 1/2 + L(x_nu) / d,

so the standard error is the one of a plain mean over the n' independent samples.

Control variate (default on).  Most of the variance of g_nu is the chi-square fluctuation of the sample's
own noise, ``1/2 - |xi_nu|^2 / (2d)`` (standard deviation 1/sqrt(2d), against a mean alpha = log(n)/d that
is far smaller at large d).  That term has mean exactly 0 since xi ~ N(0, I_d), so
``h_nu = g_nu - (1/2 - |xi_nu|^2/(2d)) = (L(x_nu) + |xi_nu|^2 / 2) / d`` has the same mean f^e with a much
smaller variance (and h_nu >= 0: it is log(1 + sum over the other points)/d).  ``control_variate=False``
gives the plain estimator of the definition.

Cost and precision.  ``|x - b|^2 = |x|^2 + |b|^2 - 2 x.b`` with ``b = a e^{-t}``; the ``|x|^2`` term is the
same for every mu and leaves the logsumexp.  The cross term ``x.a`` (2 n' n d flops per time) is a matmul
over chunks of samples (rows) and training points (columns); the logsumexp over columns is streamed
(running max and rescaled sum, :func:`online_softmax.online_softmax`, shared with the exact empirical
score), so memory is bounded by ``max_chunk_bytes`` whatever n and n'.  Norms,
the logsumexp's running max and sum, and the mean are float64.  The matmul runs in float32 by default (the
matmul rate), fused with the column bias (addmm), and the exponentials of a chunk are taken in the matmul
dtype after subtracting the row max (values in (0, 1], relative error <= u each, summed per chunk in
float32, across chunks in float64); the logsumexp argument, of magnitude ~ d r / Delta_t, carries an
absolute float32 error ~ u d r / Delta_t, i.e. ~u r / Delta_t in g_nu: below the cross-term error that
follows.  A float32
dot product of length d has rounding error |delta(x.a)| <= gamma_d |x| |a| in the worst case
(gamma_d ~ d u, u = 2^-24 ~ 6e-8) and ~sqrt(d) u |x| |a| in practice (blocked accumulation, errors of
random sign).  It enters g_nu as e^{-t} delta(x.a) / (Delta_t d); with |x|, |a| ~ sqrt(d r) for data of
mean square r per coordinate this is ~sqrt(d) u r / Delta_t: 7e-6 for d = 12 288, r = 1, Delta_t = 1, i.e.
below 1 % of alpha = log(n)/d >= 8e-4 at every size we run, and of random sign (it averages down over the
n' samples).  Centred data (r ~ 1) keep it there.  ``tests/test_entropy.py`` checks float32 against float64.
Pass ``matmul_dtype=torch.float64`` to get the exact evaluation.

Randomness: per time, the indices mu(nu) are drawn from ``generator`` and the noise of every block of
``NOISE_BLOCK`` consecutive samples from its own generator seeded from ``generator`` (drawn in
``NOISE_DTYPE``); so the result does
not depend on ``max_chunk_bytes`` (chunking only reorders float64 sums).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.measures import crossing_time
from diffusion_regimes.online_softmax import online_softmax
from diffusion_regimes.schedule import DDPMSchedule, delta_t

__all__ = ["NOISE_BLOCK", "NOISE_DTYPE", "CollapseTime", "ExcessEntropy", "collapse_time", "excess_entropy"]

NOISE_BLOCK = 128
"""Samples per independently seeded noise block (rows of a chunk are whole blocks)."""

NOISE_DTYPE = torch.float32
"""Dtype in which the noise xi is drawn (then widened to float64): PyTorch's CPU generator draws float32
normals 6x faster than float64 ones (1.5 vs 9.1 ms per 128 x 4096 block), and a float64 draw cost 16 % of
the estimator's time at n = 20 000, d = 4096 on two threads, where it is the one serial step.  A float32
normal is a float64 one rounded to 24 bits (relative 6e-8) with its tail cut near 5.8 sigma (probability
7e-9 per coordinate): the control variate's mean 1/2 - E|xi|^2/(2d) moves by ~1e-8, 1e-5 of alpha."""

# bytes per entry of a (rows x columns) chunk: the product (float64 at most) and a temporary
_BYTES_PER_PAIR = 8 + 4  # product (<= 8 bytes) + exp temporaries
# bytes per sample coordinate of a row chunk: float64 sample + float32 copy
_BYTES_PER_ROW_COORD = 8 + 4


@dataclass(frozen=True)
class ExcessEntropy:
    """f^e(t) per time with its standard error over the n' samples; ``alpha = log(n)/d``.

    ``times``, ``f``, ``f_stderr``: float64 arrays of shape ``(T,)`` (times as given, not sorted).
    """

    times: np.ndarray
    f: np.ndarray
    f_stderr: np.ndarray
    alpha: float
    n: int
    d: int
    n_prime: int


def _chunk_sizes(*, n: int, d: int, n_prime: int, max_chunk_bytes: int) -> tuple[int, int]:
    """Rows (samples, a multiple of NOISE_BLOCK) and columns (training points) per chunk within the budget."""
    block = min(NOISE_BLOCK, n_prime)
    min_bytes = block * (_BYTES_PER_ROW_COORD * d + _BYTES_PER_PAIR * min(n, 16))
    if max_chunk_bytes < min_bytes:
        raise ValueError(
            f"max_chunk_bytes={max_chunk_bytes} is below the minimum {min_bytes} for d={d}"
            f" (one block of {block} samples and 16 training points)"
        )
    # prefer all n columns at once (one pass, longest matmuls); grow rows by whole blocks while it fits
    per_block_full = block * (_BYTES_PER_ROW_COORD * d + _BYTES_PER_PAIR * n)
    if per_block_full <= max_chunk_bytes:
        total = math.ceil(n_prime / block)
        n_blocks = min(max_chunk_bytes // per_block_full, total)
        # equal row chunks (1024 samples: 2 x 512, not 896 + 128): a short last chunk runs its matmul
        # at a lower rate
        n_blocks = math.ceil(total / math.ceil(total / n_blocks))
        return int(n_blocks * block), n
    rows = block
    cols = (max_chunk_bytes - rows * _BYTES_PER_ROW_COORD * d) // (rows * _BYTES_PER_PAIR)
    return rows, int(max(16, min(n, cols)))


_NORM_CHUNK_BYTES = 2**20
"""float64 bytes per row chunk of :func:`_squared_norms`: the copy stays in a core's L2 cache, so the
conversion, the squares and the sum run at cache speed (whole-data chunks of 4096 rows cost as much as a
third of the estimator's matmul at n = 20 000, d = 4096)."""


def _squared_norms(data: torch.Tensor) -> torch.Tensor:
    """Float64 ``|a_mu|^2`` ``(n,)`` of the rows of ``data`` ``(n, d)``, exact for float32 input (a float32
    square is exact in float64), in cache-sized row chunks so no float64 copy of ``data`` is held."""
    n, d = data.shape
    rows = max(1, _NORM_CHUNK_BYTES // (8 * max(d, 1)))
    out = torch.empty(n, dtype=torch.float64, device=data.device)
    for c in range(0, n, rows):
        chunk = data[c:c + rows].to(torch.float64, copy=True)  # squared in place: never the caller's data
        torch.sum(chunk.mul_(chunk), dim=1, out=out[c:c + rows])
    return out


def entropy_time_grid(
    kind: str, *, t_min: float, t_max: float, n_times: int, step_every: int,
    schedule: DDPMSchedule | None = None,
) -> np.ndarray:
    """Ascending times ``(T,)`` float64 at which f^e(t) is estimated.

    ``kind = "geometric"``: ``n_times`` log-spaced times from ``t_min`` to ``t_max``.  ``kind =
    "ddpm_steps"``: the continuous times ``t(k) = -1/2 log alpha_bar(k)`` (docs/science.md section 1) of the
    DDPM steps ``k = s, 2s, ..., L - s`` with ``s = step_every``, the grid of the paper's authors (s = 50:
    steps 50 ... 950, t from 0.015 to 4.57), which lays f^e on the same steps as the cloning branch times.
    """
    if kind == "geometric":
        return np.geomspace(t_min, t_max, n_times)
    if kind == "ddpm_steps":
        schedule = schedule or DDPMSchedule()
        steps = np.arange(step_every, schedule.n_steps, step_every)
        if steps.size == 0:
            raise ConfigError(f"regimes.entropy_step_every = {step_every} leaves no DDPM step below "
                             f"L = {schedule.n_steps}; choose a value in [1, {schedule.n_steps - 1}]")
        return np.array([schedule.time_of_step(int(k)) for k in steps], dtype=np.float64)
    raise ConfigError(f"regimes.entropy_grid: {kind!r} is not valid; choose geometric or ddpm_steps")


def excess_entropy(
    data: torch.Tensor,
    *,
    times: Sequence[float] | np.ndarray,
    n_prime: int,
    generator: torch.Generator,
    max_chunk_bytes: int = 256 * 2**20,
    matmul_dtype: torch.dtype = torch.float32,
    control_variate: bool = True,
    progress: bool = False,
) -> ExcessEntropy:
    """Estimate f^e(t) for every time in ``times`` from the training set ``data`` of shape ``(n, d)``.

    ``data`` (any float dtype, e.g. float32 images) may live on any device (the computation follows it;
    ``generator`` must be on the same device or on the CPU).  Memory beyond ``data`` itself and its
    ``matmul_dtype`` copy (none when ``data`` already has that dtype) is bounded by ``max_chunk_bytes``.
    ``n_prime`` samples are drawn afresh at every time.
    """
    if data.ndim != 2:
        raise ValueError(f"data must have shape (n, d), got {tuple(data.shape)}")
    n, d = data.shape
    if n < 1 or n_prime < 1:
        raise ValueError(f"need n >= 1 training points and n_prime >= 1 samples, got n={n}, n'={n_prime}")
    device = data.device
    times_arr = np.asarray(times, dtype=np.float64).reshape(-1)
    if np.any(times_arr <= 0):
        raise ValueError("times must be > 0 (Delta_t = 0 at t = 0)")
    a_mm = data.to(matmul_dtype)  # (n, d) matmul operand, shared by all times (no copy if same dtype)
    a_sq = _squared_norms(data)  # (n,) float64 |a_mu|^2
    rows, cols = _chunk_sizes(n=n, d=d, n_prime=n_prime, max_chunk_bytes=max_chunk_bytes)
    block = min(NOISE_BLOCK, n_prime)
    n_blocks = math.ceil(n_prime / block)

    f = np.empty_like(times_arr)
    f_se = np.empty_like(times_arr)
    steps = range(times_arr.size)
    if progress:
        from diffusion_regimes.progress import progress as bar

        steps = bar(steps, desc=f"excess entropy n={n} d={d} n'={n_prime}", unit="time", leave=False)
    for k in steps:
        t = float(times_arr[k])
        scale = math.exp(-t)
        dlt = float(delta_t(t))
        gen_device = generator.device
        mu = torch.randint(0, n, (n_prime,), generator=generator, device=gen_device).to(device)
        seeds = torch.randint(0, 2**62, (n_blocks,), generator=generator, device=gen_device).tolist()
        # bias of the logsumexp argument: -|b_mu|^2 / (2 Delta) with b = a e^{-t}
        col_bias_mm = (-(scale * scale) * a_sq / (2.0 * dlt)).to(matmul_dtype)  # (n,)
        g = torch.empty(n_prime, dtype=torch.float64, device=device)
        for r0 in range(0, n_prime, rows):
            r1 = min(n_prime, r0 + rows)
            noise = torch.empty(r1 - r0, d, dtype=torch.float64, device=device)
            for s in range(r0, r1, block):
                noise[s - r0:s - r0 + block].copy_(torch.randn(
                    min(block, n_prime - s), d, dtype=NOISE_DTYPE, device=device,
                    generator=torch.Generator(device=device).manual_seed(seeds[s // block])))
            noise_sq = (noise * noise).sum(dim=1)  # (r,) |xi_nu|^2 for the control variate
            # x = a_mu e^{-t} + sqrt(Delta_t) xi, (r, d) float64, built in the noise's buffer
            x = noise.mul_(math.sqrt(dlt)).add_(data[mu[r0:r1]], alpha=scale)
            x_sq = (x * x).sum(dim=1)  # (r,)
            x_mm = x.to(matmul_dtype)
            # streamed logsumexp over column chunks of -|x - b|^2 / (2 Delta) + |x|^2 / (2 Delta)
            run_max, run_sum, _ = online_softmax(x_mm, a_mm, alpha=scale / dlt, bias=col_bias_mm, cols=cols)
            lse = run_max + torch.log(run_sum) - x_sq / (2.0 * dlt)
            if control_variate:
                g[r0:r1] = (lse + 0.5 * noise_sq) / d
            else:
                g[r0:r1] = 0.5 + lse / d
        f[k] = float(g.mean())
        f_se[k] = float(g.std(unbiased=True)) / math.sqrt(n_prime) if n_prime > 1 else float("nan")
    return ExcessEntropy(
        times=times_arr, f=f, f_stderr=f_se, alpha=math.log(n) / d, n=n, d=d, n_prime=n_prime
    )


@dataclass(frozen=True)
class CollapseTime:
    """Numerical collapse time with a band from the +-2 standard-error curves (nan where not reached)."""

    time: float
    low: float
    high: float
    level: float


def _isotonic_increasing(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of ``y`` (pool-adjacent-violators)."""
    from scipy.optimize import isotonic_regression

    return np.asarray(isotonic_regression(y, weights=w, increasing=True).x)


def collapse_time(result: ExcessEntropy, *, level: float = 0.1) -> CollapseTime:
    """Numerical t_C: the largest t where the monotone fit of f^e/alpha falls to ``level``.

    Criterion (documented in config/README.md): f(t) is non-decreasing in t in theory (it rises from 0 at
    t_C to alpha as t grows), so the measured f^e/alpha is first replaced by its weighted isotonic
    (non-decreasing) least-squares fit, weights 1/stderr^2; this removes the spurious multiple crossings
    that estimator noise makes near 0.  t_C is where that fit crosses ``level`` (linear interpolation
    between the measured times; ``level`` = 0.1 shifts t_C by ~level/2 below the zero of the theory line,
    whose slope in units of alpha is ~2 there).  ``low``/``high`` repeat the construction on
    f^e +- 2 stderr.  Times need not be sorted; nan where the curve never reaches ``level``.
    """
    order = np.argsort(result.times)
    t = result.times[order]
    y = result.f[order] / result.alpha
    se = result.f_stderr[order] / result.alpha
    w = 1.0 / np.maximum(se, 1e-12) ** 2

    def cross(values: np.ndarray) -> float:
        return crossing_time(t, _isotonic_increasing(values, w), level)

    return CollapseTime(time=cross(y), low=cross(y + 2 * se), high=cross(y - 2 * se), level=level)
