"""Local score machines: closed-form scores built from image patches (docs/science.md section 7).

Two more "ideal" models behind the score interface of :mod:`score` (``score(x, t) -> F``, any batch of
images ``(B, C, H, W)``), after Kamb & Ganguli's analytic theory of convolutional diffusion models:

* :class:`LocalScore` (LS): the denoiser at pixel ``i`` is the posterior mean of that pixel over the n
  training images, with posterior weights computed from the ``P x P`` patch around ``i`` only:
  ``w_mu(i) ∝ exp(-|x_{Omega_i} - e^{-t} a_{mu,Omega_i}|^2 / (2 Delta_t))``,
  ``D(x)_i = sum_mu w_mu(i) a_{mu,i}``;
* :class:`EquivariantLocalScore` (ELS): the same, but the posterior runs over the patches of every
  training image at *every* location ``j`` (``w_{mu j}(i) ∝ exp(-|x_{Omega_i} - e^{-t} a_{mu,Omega_j}|^2 /
  (2 Delta_t))``, ``D(x)_i = sum_{mu j} w_{mu j}(i) a_{mu,j}``): translation-equivariant by construction.

Both give ``F(x, t) = (e^{-t} D(x) - x) / Delta_t``, the form of the exact score
(:class:`score.EmpiricalScore` is the case ``Omega_i`` = the whole image).  With P >= 2 max(H, W) - 1 every
patch covers the whole image and LS *is* the exact score (tested).

Boundary.  Patches are centred on their pixel (P odd) and the images are zero-padded by ``P // 2``: the
query patch and the training patches alike, in the space the network sees (centred pixels).  This is the
boundary of the UNet's own zero-padded convolutions, and the choice of the machines' authors, whose
networks pad with zeros too.  For LS the padded zeros coincide in the query and the training patch at the
same place, so they contribute nothing: LS is the posterior over the part of the patch inside the image.
For ELS a border patch of the query is compared with every patch of the bank, border ones (with their
zeros) included: a zero-padded border looks like a flat mid-grey region, and the machine is
translation-equivariant only away from the border (tested), as a zero-padded CNN is.

Locality scale.  ``patch`` is a :class:`PatchSchedule`: the patch side P(t) per time (calibrated against a
trained network's denoiser in :mod:`ideal_models`), or a constant.

Arithmetic.  LS computes each chunk's logits from the differences ``x - e^{-t} a`` squared and summed over
the window by a separable box filter (two banded matmuls, :func:`box_sum`): no cancellation, so float32 is
accurate to a few units of roundoff relative to each logit, and no unfolded P^2-fold copy of the training
set.  ELS matches every query patch against a bank of m training patches: unfold + matmul (the distance
matrix ``|q|^2 + e^{-2t}|a|^2 - 2 e^{-t} q.a``) streamed over the bank by the online softmax of the exact
score (:func:`online_softmax.online_softmax`), with the same float32 rule (products in float32 where the logit
error estimate :func:`online_softmax.float32_logit_error` of a d = C P^2 product is below ``logit_tol``).
Both accumulate across chunks in float64.  The full bank holds n H W patches; ``bank_size`` draws a random
subset of them (without replacement, seeded) when that is too many for the machine at hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch.nn import functional as F

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.online_softmax import EXP_FLOOR, float32_logit_error, online_softmax
from diffusion_regimes.schedule import delta_t
from diffusion_regimes.seeds import derived_seed

__all__ = ["EquivariantLocalScore", "LocalScore", "PatchSchedule", "box_sum", "full_patch"]

BLANK_SHARE = 0.1
"""Share of a subsampled ELS bank given to blank (all-background) patches (:class:`EquivariantLocalScore`)."""

LOCAL_PRECISIONS = ("mixed", "float64")
"""``mixed``: float32 chunk arithmetic (ELS: where its error bound allows), float64 accumulation;
``float64``: float64 throughout (the reference, used by the tests)."""


def full_patch(height: int, width: int) -> int:
    """The smallest odd patch side whose centred window covers a ``height x width`` image from every
    pixel: ``2 max(H, W) - 1``."""
    return 2 * max(height, width) - 1


@dataclass(frozen=True)
class PatchSchedule:
    """Patch side P(t): ``sizes[j]`` at ``times[j]`` (ascending), nearest calibration time in log t between.

    A single entry is a constant P.  Every size must be odd (a window centred on its pixel) and >= 1.
    """

    times: tuple[float, ...]
    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        times = tuple(float(t) for t in self.times)
        sizes = tuple(int(p) for p in self.sizes)
        if not sizes or len(times) != len(sizes):
            raise ConfigError(f"patch schedule: need one size per time, got times {times} and sizes {sizes}")
        if any(p < 1 or p % 2 == 0 for p in sizes):
            raise ConfigError(f"patch schedule: patch sides must be odd and >= 1 (a window centred on its "
                              f"pixel), got {sizes}")
        if any(not t > 0 for t in times) or any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ConfigError(f"patch schedule: times must be positive and strictly ascending, got {times}")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "sizes", sizes)

    @classmethod
    def constant(cls, size: int) -> PatchSchedule:
        return cls(times=(1.0,), sizes=(int(size),))

    def __call__(self, t: float) -> int:
        if len(self.sizes) == 1:
            return self.sizes[0]
        lt = math.log(max(float(t), 1e-12))
        j = min(range(len(self.times)), key=lambda k: abs(math.log(self.times[k]) - lt))
        return self.sizes[j]


def _schedule(patch: PatchSchedule | int) -> PatchSchedule:
    return patch if isinstance(patch, PatchSchedule) else PatchSchedule.constant(int(patch))


def _check(t: float, precision: str) -> None:
    if not t > 0.0:
        raise ValueError(f"a local score is singular at t = {t}; evaluate it only at t > 0")
    if precision not in LOCAL_PRECISIONS:
        raise ConfigError(f"local score precision {precision!r} is not valid; choose one of "
                          f"{list(LOCAL_PRECISIONS)}")


def band(length: int, size: int, *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """``(length, length)`` matrix of ones where ``|i - j| <= size // 2``: multiplying by it sums a centred
    window of ``size`` entries along one axis, with zeros beyond the ends (the zero padding)."""
    idx = torch.arange(length, device=device)
    return ((idx[:, None] - idx[None, :]).abs() <= size // 2).to(dtype)


def box_sum(values: torch.Tensor, size: int) -> torch.Tensor:
    """Sum of ``values`` ``(N, H, W)`` over the ``size x size`` window centred on every pixel (zeros
    outside the image): ``B_H @ values @ B_W`` with the banded matrices of :func:`band`, two small matmuls
    (a separable box filter; ~10x faster on a CPU than pooling layers, measured at 32 x 32, P = 9)."""
    _, h, w = values.shape
    rows = band(h, size, dtype=values.dtype, device=values.device)
    cols = rows if w == h else band(w, size, dtype=values.dtype, device=values.device)
    return torch.matmul(torch.matmul(rows, values), cols)


@dataclass(frozen=True)
class LocalScore:
    """The local score machine (LS; module docstring).

    ``data``: training images ``(n, C, H, W)``; ``patch``: P(t) (:class:`PatchSchedule`) or a constant odd
    side.  ``x`` of any shape ``(B, ...)`` with ``prod(...) = C H W``; the score has the shape and dtype of
    ``x``.  Training images are streamed in chunks whose ``(B, chunk, C, H, W)`` working set stays below
    ``max_chunk_bytes``, with a per-pixel online softmax across chunks.
    """

    data: torch.Tensor  # (n, C, H, W)
    patch: PatchSchedule | int = 5
    max_chunk_bytes: int = 64 * 2**20
    precision: str = "mixed"

    def __post_init__(self) -> None:
        if self.data.dim() != 4:
            raise ValueError(f"data must be images (n, C, H, W), got shape {tuple(self.data.shape)}")
        _check(1.0, self.precision)
        object.__setattr__(self, "patch", _schedule(self.patch))
        work = torch.float32 if self.precision == "mixed" else torch.float64
        object.__setattr__(self, "_work", self.data.to(work))

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[1:])  # type: ignore[return-value]

    def denoise(self, x: torch.Tensor, t: float, *, size: int | None = None) -> torch.Tensor:
        """Posterior mean ``D(x)`` ``(B, C, H, W)`` float64 of the images ``x`` at time ``t`` (patch side
        ``size``, default P(t))."""
        _check(t, self.precision)
        p = int(size) if size is not None else self.patch(t)
        a_all = self._work
        imgs = x.reshape(x.shape[0], *self.image_shape).to(device=a_all.device, dtype=a_all.dtype)
        b, c_ch, h, w = imgs.shape
        decay, dt = math.exp(-t), float(delta_t(t))
        per_image = b * c_ch * h * w * a_all.element_size() * 3
        rows = max(1, min(self.n, self.max_chunk_bytes // max(1, per_image)))
        run_max = run_sum = run_vec = None
        for c0 in range(0, self.n, rows):
            a = a_all[c0:c0 + rows]  # (c, C, H, W)
            sq = torch.sub(imgs[:, None], a[None], alpha=decay).square_()  # (B, c, C, H, W)
            sq = sq[:, :, 0] if c_ch == 1 else sq.sum(dim=2)  # (B, c, H, W)
            logits = box_sum(sq.reshape(-1, h, w), p).reshape(sq.shape).mul_(-0.5 / dt)
            chunk_max = logits.amax(dim=1).to(torch.float64)  # (B, H, W)
            new_max = chunk_max if run_max is None else torch.maximum(run_max, chunk_max)
            weights = logits.sub_(new_max.to(logits.dtype)[:, None]).clamp_min_(EXP_FLOOR).exp_()
            sums = weights.sum(dim=1, dtype=torch.float64)
            # the chunk's weighted sum in the working dtype, accumulated across chunks in float64
            vec = (weights[:, :, None] * a[None]).sum(dim=1).to(torch.float64)  # (B, C, H, W)
            if run_max is None:
                run_sum, run_vec = sums, vec
            else:
                rescale = torch.exp(run_max - new_max)
                run_sum = run_sum * rescale + sums
                run_vec = run_vec * rescale[:, None] + vec
            run_max = new_max
        return run_vec / run_sum[:, None]

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """``F(x, t) = (e^{-t} D(x) - x) / Delta_t`` for ``x`` of shape ``(B, ...)``; shape and dtype of x."""
        mean = self.denoise(x, t)
        flat = x.reshape(mean.shape).to(device=mean.device, dtype=torch.float64)
        score = (math.exp(-t) * mean - flat) / float(delta_t(t))
        return score.to(device=x.device, dtype=x.dtype).reshape(x.shape)


def unfold_patches(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-padded ``size x size`` patches around every pixel: ``(N, C, H, W)`` -> ``(N, H W, C size^2)``
    (channel-major, then rows, then columns: :func:`torch.nn.functional.unfold`'s order)."""
    return F.unfold(images, size, padding=size // 2).transpose(1, 2)


@dataclass(frozen=True)
class _Bank:
    """The patches of one side P: float64 patches ``(m, C P^2)``, their float32 copy, squared norms,
    largest norm and centre pixels ``(m, C)``."""

    patches: torch.Tensor
    patches32: torch.Tensor
    sq_norms: torch.Tensor
    norm: float
    centres: torch.Tensor
    centres32: torch.Tensor
    positions: torch.Tensor | None = None  # (m,) flat (image, row, column) index of each patch; None = all
    log_weights: torch.Tensor | None = None  # (m,) float64 log of the patches each one stands for


@dataclass(frozen=True)
class EquivariantLocalScore:
    """The equivariant local score machine (ELS; module docstring).

    ``data``: training images ``(n, C, H, W)``; ``patch``: P(t) or a constant odd side; ``bank_size``: how
    many of the ``n H W`` (image, location) patches form the bank (``None``: all of them).  A subsampled bank
    is drawn per P without replacement (seeded by ``seed`` and P) in two strata: *blank* patches (every
    pixel inside the image at the data's background, the per-channel minimum: most of an MNIST image) get
    :data:`BLANK_SHARE` of the bank and the others the rest; each kept patch stands for the N_s / m_s patches
    of its stratum s, a log-weight added to its logit, so the sums over the bank estimate the sums over all
    n H W patches without bias (uniform draws would spend ~3/4 of the bank on identical background patches).
    The patch bank of each P is built on first use and kept.
    ``x`` of any shape ``(B, ...)`` with ``prod(...) = C H W``; the score has the shape and dtype of ``x``.
    Query patches run in blocks of ``query_rows`` (pixels x images) against bank chunks whose logit block
    stays below ``max_chunk_bytes``.
    """

    data: torch.Tensor  # (n, C, H, W)
    patch: PatchSchedule | int = 5
    bank_size: int | None = None
    seed: int = 0
    max_chunk_bytes: int = 64 * 2**20
    precision: str = "mixed"
    logit_tol: float = 1e-2
    query_rows: int = 8192
    _banks: dict[int, _Bank] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.data.dim() != 4:
            raise ValueError(f"data must be images (n, C, H, W), got shape {tuple(self.data.shape)}")
        _check(1.0, self.precision)
        object.__setattr__(self, "patch", _schedule(self.patch))
        object.__setattr__(self, "data", self.data.to(torch.float64))
        n, _, h, w = self.data.shape
        if self.bank_size is not None and self.bank_size < 1:
            raise ConfigError(f"ELS bank_size must be >= 1 (or null for all {n * h * w} patches), "
                              f"got {self.bank_size}")

    def blank(self, size: int) -> torch.Tensor:
        """``(n H W,)`` bool: the patches of side ``size`` whose in-image pixels all equal the background
        (the per-channel minimum of the data); the zero padding is the same in every image."""
        background = self.data.amin(dim=(0, 2, 3)).reshape(1, -1, 1, 1)
        off = (self.data - background).abs().amax(dim=1, keepdim=True)  # (n, 1, H, W)
        pad = size // 2
        # zero padding: positions outside the image never count as "not background"
        spread = F.max_pool2d(F.pad(off, (pad, pad, pad, pad)), size, stride=1)
        return (spread == 0).reshape(-1)

    def _draw(self, size: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Positions and log-weights of the bank of side ``size`` (``(None, None)``: every patch)."""
        n, _, h, w = self.data.shape
        total = n * h * w
        if self.bank_size is None or self.bank_size >= total:
            return None, None
        m = int(self.bank_size)
        gen = torch.Generator().manual_seed(derived_seed(int(self.seed), "els-bank", size))
        blank = self.blank(size).cpu()
        strata = [blank.nonzero().squeeze(1), (~blank).nonzero().squeeze(1)]
        n_blank, n_rest = (int(s.numel()) for s in strata)
        m_blank = min(n_blank, max(1 if n_blank else 0, round(BLANK_SHARE * m)))
        m_rest = min(n_rest, m - m_blank)
        m_blank = min(n_blank, m - m_rest)  # a small non-blank stratum leaves its share to the blank one
        picks, logw = [], []
        for stratum, count in zip(strata, (m_blank, m_rest), strict=True):
            if count:
                picks.append(stratum[torch.randperm(stratum.numel(), generator=gen)[:count]])
                logw.append(torch.full((count,), math.log(stratum.numel() / count), dtype=torch.float64))
        positions, log_weights = torch.cat(picks), torch.cat(logw)
        order = positions.argsort()
        return positions[order], log_weights[order]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[1:])  # type: ignore[return-value]

    @property
    def bank_patches(self) -> int:
        """Patches in the bank, m."""
        n, _, h, w = self.data.shape
        return n * h * w if self.bank_size is None else min(int(self.bank_size), n * h * w)

    def bank(self, size: int) -> _Bank:
        """The patch bank of side ``size`` (built on first use)."""
        if size in self._banks:
            return self._banks[size]
        n, _, h, w = self.data.shape
        hw = h * w
        positions, log_weights = self._draw(size)
        pieces = []
        per_image = hw * self.data.shape[1] * size * size * 8
        step = max(1, (256 * 2**20) // per_image)
        for i0 in range(0, n, step):
            patches = unfold_patches(self.data[i0:i0 + step], size)
            patches = patches.reshape(-1, self.data.shape[1] * size * size)
            if positions is not None:
                lo, hi = i0 * hw, min(n, i0 + step) * hw
                keep = positions[(positions >= lo) & (positions < hi)] - lo
                patches = patches[keep.to(patches.device)]
            pieces.append(patches)
        patches = torch.cat(pieces).contiguous()
        centre = (size // 2) * size + size // 2
        centres = patches[:, centre::size * size].contiguous()  # (m, C): the centre pixel of every channel
        sq = (patches * patches).sum(dim=1)
        made = _Bank(patches=patches, patches32=patches.to(torch.float32), sq_norms=sq,
                     norm=float(sq.max().sqrt()), centres=centres, centres32=centres.to(torch.float32),
                     positions=positions,
                     log_weights=None if log_weights is None else log_weights.to(patches.device))
        self._banks[size] = made
        return made

    def with_patch(self, patch: PatchSchedule | int) -> EquivariantLocalScore:
        """The same machine (same bank, shared with this one) with another P(t)."""
        twin = replace(self, patch=patch)
        object.__setattr__(twin, "_banks", self._banks)
        return twin

    def uses_float32(self, queries: torch.Tensor, t: float, size: int) -> bool:
        """Whether the product of these query patches ``(N, C P^2)`` with the bank runs in float32."""
        if self.precision != "mixed":
            return False
        q_norm = float(queries.norm(dim=1).max()) if queries.shape[0] else 0.0
        err = float32_logit_error(d=queries.shape[1], x_norm=q_norm, a_norm=self.bank(size).norm, t=t)
        return err <= self.logit_tol

    def denoise(self, x: torch.Tensor, t: float, *, size: int | None = None) -> torch.Tensor:
        """Posterior mean ``D(x)`` ``(B, C, H, W)`` float64 of the images ``x`` at time ``t`` (patch side
        ``size``, default P(t))."""
        _check(t, self.precision)
        p = int(size) if size is not None else self.patch(t)
        imgs = x.reshape(x.shape[0], *self.image_shape).to(device=self.data.device, dtype=torch.float64)
        b, c_ch, h, w = imgs.shape
        bank = self.bank(p)
        queries = unfold_patches(imgs, p).reshape(b * h * w, c_ch * p * p)
        decay, dt = math.exp(-t), float(delta_t(t))
        bias = -(decay * decay) * bank.sq_norms / (2.0 * dt)
        if bank.log_weights is not None:  # each kept patch stands for N_s / m_s of its stratum
            bias = bias + bank.log_weights
        fast = self.uses_float32(queries, t, p)
        means = []
        for q in queries.split(self.query_rows):
            cols = max(1, min(bank.patches.shape[0], self.max_chunk_bytes // max(1, 16 * q.shape[0])))
            if fast:
                _, run_sum, run_vec = online_softmax(q.to(torch.float32), bank.patches32, alpha=decay / dt,
                                                     bias=bias.to(torch.float32), cols=cols,
                                                     weighted_mean=True, values=bank.centres32)
            else:
                _, run_sum, run_vec = online_softmax(q, bank.patches, alpha=decay / dt, bias=bias, cols=cols,
                                                     weighted_mean=True, values=bank.centres)
            means.append(run_vec / run_sum[:, None])
        return torch.cat(means).reshape(b, h * w, c_ch).transpose(1, 2).reshape(b, c_ch, h, w)

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """``F(x, t) = (e^{-t} D(x) - x) / Delta_t`` for ``x`` of shape ``(B, ...)``; shape and dtype of x."""
        mean = self.denoise(x, t)
        flat = x.reshape(mean.shape).to(device=mean.device, dtype=torch.float64)
        score = (math.exp(-t) * mean - flat) / float(delta_t(t))
        return score.to(device=x.device, dtype=x.dtype).reshape(x.shape)
