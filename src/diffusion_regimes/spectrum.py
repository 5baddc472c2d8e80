"""Covariance spectra of the data and the predicted speciation time (docs/science.md section 2).

``t_S = ½ log Λ`` with Λ the largest eigenvalue of the data covariance ``C = Xᵀ X / (n - 1)``, X the
(n, d) matrix of images centred pixel by pixel (the covariance's own centring; the stored subsets are
already centred per channel, which this refines).  Two conventions: the paper's Table 1 uses the first
colour channel only; we also report all channels.

How the top eigenvalue is computed.  ``torch.lobpcg`` only accepts a dense or sparse ``Tensor`` for A
(it checks ``isinstance(A, Tensor)`` and multiplies with ``torch.matmul``), so a duck-typed
LinearOperator is rejected.  We stay on the public API and stay matrix-free: A is a zero-storage
``(d, d)`` placeholder (an expanded scalar), and a :class:`torch.overrides.TorchFunctionMode` active
during the call intercepts every ``torch.matmul(A, V)`` and returns ``Xᵀ (X V) / (n - 1)``: two thin
matmuls, O(n d k) per iteration, no d × d matrix.  When min(n, d) is small enough
(``dense_limit``) the full spectrum is cheaper and exact: ``eigvalsh`` of the smaller of C (d × d) and
the Gram matrix G = X Xᵀ / (n - 1) (n × n), which share their non-zero eigenvalues.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.overrides import TorchFunctionMode

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PairStatistics", "SpectraOptions", "SubsetSpectrum", "bootstrap_top_eigenvalue", "centre_pixels",
    "channel_views",
    "covariance_spectrum", "pair_statistics", "pair_table", "subset_spectrum", "t_speciation",
    "spectrum_top", "top_eigenvalue",
]


@dataclass(frozen=True)
class SpectraOptions:
    """The ``spectra:`` config section.

    dense_limit: full spectrum (``eigvalsh``) when min(n, d) is at most this, else matrix-free lobpcg;
    n_top: how many leading eigenvalues to keep for the scree plot; tol: lobpcg relative residual;
    n_boot: bootstrap replicates over images for the sampling error of Λ (0 = none).
    """

    dense_limit: int = 4096
    n_top: int = 50
    tol: float = 1e-9
    n_boot: int = 20
    # workflow switches of the Fashion-MNIST pair table (rule fashion_pairs); the spectrum job reads neither
    fashion_pairs: bool = False
    fashion_path: str | None = None


def t_speciation(lam: float) -> float:
    """t_S = ½ log Λ (docs/science.md section 2: Λ e^{-2 t_S} = 1); NaN when Λ <= 0 (no variance at all)."""
    return 0.5 * math.log(lam) if lam > 0 else math.nan


def centre_pixels(x: torch.Tensor) -> torch.Tensor:
    """(n, d) -> (n, d) float64 with every column's mean removed."""
    x = x.to(torch.float64)
    return x - x.mean(dim=0, keepdim=True)


class _CovarianceProduct(TorchFunctionMode):
    """Answers ``torch.matmul(placeholder, V)`` with ``Xᵀ (X V) / (n - 1)``; every other call passes."""

    def __init__(self, x: torch.Tensor, placeholder: torch.Tensor) -> None:
        super().__init__()
        self.x, self.placeholder, self.products = x, placeholder, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func is torch.matmul and args and args[0] is self.placeholder:
            self.products += 1
            y = self.x @ args[1]
            # (yᵀ X)ᵀ reads X row-major once; X.T @ y would stream a transposed view (measured 3-4x slower).
            return (y.T @ self.x).T / (self.x.shape[0] - 1)
        return func(*args, **kwargs)


def top_eigenvalue(x_centred: torch.Tensor, *, k: int = 1, tol: float = 1e-9, niter: int = 1000,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The ``k`` largest eigenvalues of ``Xᵀ X / (n-1)``, matrix-free (``torch.lobpcg``), descending.

    x_centred: (n, d), already centred as the caller wants (float64 recommended).  Returns (k,) float64.
    lobpcg needs 3 k < d; its block is started from a seeded random (d, 2k) matrix.
    """
    n, d = x_centred.shape
    x = x_centred.to(torch.float64)
    block = max(2 * k, k + 2)
    if 3 * block >= d:
        # Too small for lobpcg's block; the dense route is exact and cheap here.
        return covariance_spectrum(x)[:k]
    gen = generator if generator is not None else torch.Generator(device=x.device).manual_seed(0)
    start = torch.randn(d, block, dtype=torch.float64, device=x.device, generator=gen)
    # Zero-storage (d, d) stand-in for the covariance: stride-0 view of one number.
    placeholder = torch.zeros((), dtype=torch.float64, device=x.device).expand(d, d)
    with _CovarianceProduct(x, placeholder):
        values, _ = torch.lobpcg(placeholder, k=k, X=start, tol=tol, niter=niter, largest=True)
    return values.sort(descending=True).values


def covariance_spectrum(x_centred: torch.Tensor) -> torch.Tensor:
    """All min(n, d) eigenvalues of ``Xᵀ X / (n-1)``, descending, float64.

    Uses the smaller of the covariance (d × d) and the Gram matrix (n × n); they share their non-zero
    eigenvalues, so the result does not depend on the route (tested).
    """
    n, d = x_centred.shape
    x = x_centred.to(torch.float64)
    small = x.T @ x if d <= n else x @ x.T
    return torch.linalg.eigvalsh(small / (n - 1)).flip(0)


def spectrum_top(x_centred: torch.Tensor, *, options: SpectraOptions,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Leading ``options.n_top`` eigenvalues: dense when min(n, d) <= dense_limit, else lobpcg."""
    n, d = x_centred.shape
    if min(n, d) <= options.dense_limit:
        return covariance_spectrum(x_centred)[: options.n_top]
    return top_eigenvalue(x_centred, k=min(options.n_top, d // 6), tol=options.tol, generator=generator)


@dataclass(frozen=True)
class PairStatistics:
    """Which direction carries the class difference of a two-class set (docs/science.md section 2).

    ``lam``: top covariance eigenvalue Λ; ``ratio``: λ₁/λ₂; ``sign_separation``: the fraction of images whose
    class the sign of their projection on the top eigenvector gives (the better of the two sign
    conventions, so 0.5 is chance); ``lam_delta``: the variance of the data along the unit class-mean
    difference u = (μ₁ − μ₀)/|μ₁ − μ₀|, uᵀ C u (≤ Λ, equal when u is the top eigenvector); ``cos_delta``:
    |cos| of the angle between u and the top eigenvector.  The two speciation predictions are ½ log Λ
    (the paper's) and ½ log λ_Δ (the variance along the direction the classes actually differ in).
    """

    lam: float
    ratio: float
    sign_separation: float
    lam_delta: float
    cos_delta: float

    @property
    def t_s_lambda(self) -> float:
        return t_speciation(self.lam)

    @property
    def t_s_delta(self) -> float:
        return t_speciation(self.lam_delta)


def pair_statistics(images: torch.Tensor, labels: torch.Tensor) -> PairStatistics:
    """:class:`PairStatistics` of images ``(n, ...)``, labels ``(n,)`` in {0, 1} (float64, dense d × d)."""
    x = centre_pixels(images.reshape(images.shape[0], -1))
    labels = labels.reshape(-1).to(torch.long)
    if set(labels.unique().tolist()) != {0, 1}:
        raise ValueError(f"pair_statistics needs labels 0 and 1, got {sorted(labels.unique().tolist())}")
    n = x.shape[0]
    cov = x.T @ x / (n - 1)
    values, vectors = torch.linalg.eigh(cov)
    lam, second = float(values[-1]), float(values[-2])
    top = vectors[:, -1]
    agree = float(((x @ top > 0).long() == labels).double().mean())
    delta = x[labels == 1].mean(dim=0) - x[labels == 0].mean(dim=0)
    u = delta / delta.norm()
    return PairStatistics(lam=lam, ratio=lam / second if second > 0 else math.inf,
                          sign_separation=max(agree, 1.0 - agree), lam_delta=float(u @ cov @ u),
                          cos_delta=float((u @ top).abs()))


@dataclass(frozen=True)
class SubsetSpectrum:
    """Λ and t_S for one subset, in both conventions, with bootstrap errors over images.

    top_first / top_all: leading eigenvalues (descending) for the scree plot.
    """

    lambda_first_channel: float
    lambda_all_channels: float
    se_first_channel: float
    se_all_channels: float
    top_first: torch.Tensor
    top_all: torch.Tensor

    @property
    def t_s_first_channel(self) -> float:
        return t_speciation(self.lambda_first_channel)

    @property
    def t_s_all_channels(self) -> float:
        return t_speciation(self.lambda_all_channels)


def channel_views(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, C, H, W) -> ((n, H W) first channel, (n, C H W) all channels), float64, pixel-centred."""
    n = images.shape[0]
    return centre_pixels(images[:, 0].reshape(n, -1)), centre_pixels(images.reshape(n, -1))


def _top1(x: torch.Tensor, options: SpectraOptions, generator: torch.Generator) -> float:
    n, d = x.shape
    if min(n, d) <= options.dense_limit:
        return float(covariance_spectrum(x)[0])
    return float(top_eigenvalue(x, k=1, tol=options.tol, generator=generator)[0])


def bootstrap_top_eigenvalue(images: torch.Tensor, *, n_boot: int, options: SpectraOptions,
                             generator: torch.Generator) -> tuple[float, float]:
    """Bootstrap standard error of Λ over images (resampling images with replacement).

    images: (n, C, H, W).  Returns (se first channel, se all channels); 0 when n_boot is 0.
    """
    if n_boot <= 0:
        return 0.0, 0.0
    n = images.shape[0]
    first, every = [], []
    for _ in range(n_boot):
        pick = torch.randint(0, n, (n,), generator=generator)
        xf, xa = channel_views(images[pick])
        first.append(_top1(xf, options, generator))
        every.append(_top1(xa, options, generator))
    return float(torch.tensor(first).std()), float(torch.tensor(every).std())


def subset_spectrum(images: torch.Tensor, *, options: SpectraOptions,
                    generator: torch.Generator) -> SubsetSpectrum:
    """Both conventions for one subset's images (n, C, H, W) (docs/science.md sections 2 and 4)."""
    xf, xa = channel_views(images)
    top_first = spectrum_top(xf, options=options, generator=generator)
    top_all = spectrum_top(xa, options=options, generator=generator)
    se_first, se_all = bootstrap_top_eigenvalue(images, n_boot=options.n_boot, options=options,
                                                generator=generator)
    return SubsetSpectrum(
        lambda_first_channel=float(top_first[0]), lambda_all_channels=float(top_all[0]),
        se_first_channel=se_first, se_all_channels=se_all, top_first=top_first, top_all=top_all,
    )


PAIR_COLUMNS = ("class_a", "class_b", "label_a", "label_b", "n", "Lambda", "ratio_12", "sign_separation",
                "lambda_delta", "cos_delta", "t_s_lambda", "t_s_delta")


def pair_table(images: torch.Tensor, labels: torch.Tensor, names: Sequence[str]) -> pd.DataFrame:
    """:class:`PairStatistics` of every pair of classes (``images`` ``(N, ...)``, labels 0 .. K-1 naming
    ``names``), one row per pair in :data:`PAIR_COLUMNS` order (pixels as given; each pair centred)."""
    import itertools

    import pandas as pd

    rows = []
    for a, b in itertools.combinations(range(len(names)), 2):
        keep = (labels == a) | (labels == b)
        stats = pair_statistics(images[keep], (labels[keep] == b).long())
        rows.append({"class_a": names[a], "class_b": names[b], "label_a": a, "label_b": b,
                     "n": int(keep.sum()), "Lambda": stats.lam, "ratio_12": stats.ratio,
                     "sign_separation": stats.sign_separation, "lambda_delta": stats.lam_delta,
                     "cos_delta": stats.cos_delta, "t_s_lambda": stats.t_s_lambda,
                     "t_s_delta": stats.t_s_delta})
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
