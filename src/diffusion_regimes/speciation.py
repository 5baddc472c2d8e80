"""Speciation beyond one spike: classes that differ by covariance, nested classes, and a predictor of t_S
that needs no spike (docs/science.md section "Speciation as Bayes classification").

Speciation is when the noised point's class becomes decidable: clones branched from ``x_t`` end in class
c with the posterior probability ``p(c | x_t)`` (the exact reverse dynamics samples ``P(x_0 | x_t)``), so
the cloning curve is ``phi(t) = E_{x_t}[sum_c p(c | x_t)^2]``.  This module holds

* :class:`GaussianClasses` -- K Gaussian classes (mean, covariance, prior): the exact score of their
  mixture under the forward process, its Bayes posterior, and the batched *Gaussian-class predictor*
  :func:`class_log_likelihoods` / :func:`predicted_curve` (each class of real images replaced by the
  Gaussian with its mean and covariance; a noised class stays Gaussian, mean ``e^{-t} mu``, covariance
  ``e^{-2t} Sigma + Delta_t I``);
* the Gaussian-mixture experiments with exact scores and exact low-dimensional engines:
  equal-mean classes (isotropic variances ``v_+ != v_-``, or differing on a k-dimensional subspace; the
  radial engine :class:`RadialEulerMaruyama`), the mean-separated mixture of the paper as a control
  (:func:`gaussian_mixture.speciation`), and a nested four-class mixture (two groups of two classes);
  their closed-form cloning curves and the fit of t_S against log d (:func:`gm_experiment`);
* the real-data pieces: the predictor table of class pairs (:func:`pair_predictions`), the exact-score
  cloning measurement labelled by the nearest training image (:func:`measure_pair`), the K-class
  agreement curves at group and class level (:func:`group_agreement`), and the comparison of predictors
  with measurement (:func:`predictor_table`, :func:`rms_with_interval`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from diffusion_regimes import theory
from diffusion_regimes.errors import ConfigError, DataError
from diffusion_regimes.measures import PHI_SPECIATION_LEVEL, bootstrap_weights, crossing_time
from diffusion_regimes.sampler import (
    EulerMaruyama,
    Integrator,
    Score,
    clone_sweep,
    snap_to_grid,
    staggered_reverse,
)
from diffusion_regimes.schedule import delta_t
from diffusion_regimes.seeds import derived_seed

_LOG_2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------------------------ Gaussian classes
@dataclass(frozen=True)
class GaussianClasses:
    """K Gaussian classes ``N(mu_c, Sigma_c)`` with priors ``pi_c``, each covariance stored by its
    eigendecomposition ``Sigma_c = V_c diag(lambda_c) V_c^T`` (computed once).

    ``means`` (K, d), ``eigenvalues`` (K, d) >= 0, ``eigenvectors`` (K, d, d) (columns), ``log_priors``
    (K,); float64.  Under the forward process class c at time t is ``N(e^{-t} mu_c, S_c(t))`` with
    ``S_c(t) = V_c diag(e^{-2t} lambda_c + Delta_t) V_c^T``: the same eigenvectors, so one projection per
    class serves every time.
    """

    means: torch.Tensor
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None  # None: the identity for every class (isotropic or diagonal classes)
    log_priors: torch.Tensor

    @classmethod
    def fit(cls, images: torch.Tensor, labels: torch.Tensor, *, classes: int | None = None,
            equal_priors: bool = True) -> GaussianClasses:
        """Mean and covariance of each class of ``images`` (N, ...) labelled ``labels`` (N,) in 0..K-1.

        The covariance is ``X_c^T X_c / (n_c - 1)`` of the class's centred images (float64); eigenvalues
        below zero by rounding are set to zero.  ``equal_priors``: 1/K each (balanced pairs), else the
        class frequencies.
        """
        x = images.reshape(images.shape[0], -1).to(torch.float64)
        y = labels.reshape(-1).to(torch.long)
        k = int(classes if classes is not None else int(y.max()) + 1)
        means, values, vectors, counts = [], [], [], []
        for c in range(k):
            xc = x[y == c]
            if xc.shape[0] < 2:
                raise DataError(f"GaussianClasses.fit: class {c} has {xc.shape[0]} image(s); need >= 2")
            mu = xc.mean(dim=0)
            xc = xc - mu
            lam, vec = torch.linalg.eigh(xc.T @ xc / (xc.shape[0] - 1))
            means.append(mu)
            values.append(lam.clamp_min(0.0))
            vectors.append(vec)
            counts.append(xc.shape[0])
        priors = torch.full((k,), 1.0 / k, dtype=torch.float64) if equal_priors else \
            torch.tensor(counts, dtype=torch.float64) / sum(counts)
        return cls(torch.stack(means), torch.stack(values), torch.stack(vectors), priors.log())

    @classmethod
    def isotropic(cls, means: torch.Tensor, variances: Sequence[float] | torch.Tensor) -> GaussianClasses:
        """Classes ``N(mu_c, v_c I)`` with equal priors: ``means`` (K, d), ``variances`` (K,)."""
        means = means.to(torch.float64)
        k, d = means.shape
        var = torch.as_tensor(variances, dtype=torch.float64).reshape(k, 1).expand(k, d).clone()
        return cls(means, var, None, torch.full((k,), -math.log(k), dtype=torch.float64))

    @property
    def k(self) -> int:
        return int(self.means.shape[0])

    @property
    def d(self) -> int:
        return int(self.means.shape[1])

    def restricted(self, members: Sequence[int]) -> GaussianClasses:
        """The classes ``members`` alone, with equal priors (a pair or group out of the K classes)."""
        idx = torch.as_tensor(list(members), dtype=torch.long)
        m = len(members)
        vectors = self.eigenvectors[idx] if self.eigenvectors is not None else None
        return GaussianClasses(self.means[idx], self.eigenvalues[idx], vectors,
                               torch.full((m,), -math.log(m), dtype=torch.float64))

    def basis(self, c: int) -> torch.Tensor:
        """``V_c`` (d, d): the eigenvectors of class c as columns."""
        if self.eigenvectors is None:
            return torch.eye(self.d, dtype=torch.float64)
        return self.eigenvectors[c]

    def noised_variances(self, t: float) -> torch.Tensor:
        """``e^{-2t} lambda_c + Delta_t`` (K, d): the eigenvalues of the noised class covariances."""
        return math.exp(-2.0 * t) * self.eigenvalues + float(delta_t(t))

    def _projections(self, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``y_c = V_c^T (x - e^{-t} mu_c)`` (K, B, d) and the noised variances (K, d)."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        centred = flat[None, :, :] - math.exp(-t) * self.means[:, None, :]
        if self.eigenvectors is None:
            return centred, self.noised_variances(t)
        return torch.bmm(centred, self.eigenvectors), self.noised_variances(t)

    def log_likelihoods(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """``log pi_c + log N(x; e^{-t} mu_c, S_c(t))`` for ``x`` (B, ...) -> (B, K) float64."""
        y, s = self._projections(x, t)
        ll = -0.5 * ((y * y) / s[:, None, :]).sum(dim=2) - 0.5 * s.log().sum(dim=1)[:, None]
        return (ll - 0.5 * self.d * _LOG_2PI + self.log_priors[:, None]).T

    def posterior(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Bayes class posterior ``p(c | x_t = x)`` (B, K) of the noised mixture."""
        return torch.softmax(self.log_likelihoods(x, t), dim=1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Bayes class at t = 0 (argmax of the posterior), ``(B,)`` long."""
        return self.log_likelihoods(x, 0.0).argmax(dim=1)

    def score(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Exact score of the noised mixture: ``-sum_c p(c|x) S_c(t)^{-1} (x - e^{-t} mu_c)``; shape of x.

        Two matmuls per class (project, weight by 1/s, project back); no d x d inverse is formed.
        """
        y, s = self._projections(x, t)
        ll = -0.5 * ((y * y) / s[:, None, :]).sum(dim=2) - 0.5 * s.log().sum(dim=1)[:, None] \
            + self.log_priors[:, None]
        w = torch.softmax(ll, dim=0)  # (K, B)
        weighted = w[:, :, None] * y / s[:, None, :]
        if self.eigenvectors is not None:
            weighted = torch.bmm(weighted, self.eigenvectors.transpose(1, 2))
        force = -weighted.sum(dim=0)
        return force.to(x.dtype).reshape(x.shape)

    def sample_pt(self, n_per_class: int, *, t: float, generator: torch.Generator) -> tuple[torch.Tensor,
                                                                                               torch.Tensor]:
        """``n_per_class`` exact samples of each noised class: states (K n, d) and their classes (K n,)."""
        xs, ys = [], []
        for c in range(self.k):
            z = torch.randn(n_per_class, self.d, dtype=torch.float64, generator=generator)
            root = self.noised_variances(t)[c].sqrt()
            xs.append(math.exp(-t) * self.means[c] + (z * root) @ self.basis(c).T)
            ys.append(torch.full((n_per_class,), c, dtype=torch.long))
        return torch.cat(xs), torch.cat(ys)


def class_log_likelihoods(model: GaussianClasses, images: torch.Tensor, times: np.ndarray, *,
                          generator: torch.Generator, chunk: int = 4096) -> torch.Tensor:
    """``log N(x_t; e^{-t} mu_c, S_c(t))`` of noised images for every class and time: (K, N, T) float64.

    ``x_t = e^{-t} a + sqrt(Delta_t) z`` with one standard normal ``z`` per image ``a`` (``images`` (N, ...),
    in the coordinates of ``model``; a common shift of images and means cancels).  With
    ``A_c = V_c^T (a - mu_c)`` and ``Z_c = V_c^T z`` (two matmuls per class, once for every time),
    ``x_t - e^{-t} mu_c = V_c (e^{-t} A_c + sqrt(Delta_t) Z_c)`` and the quadratic form at all T times is

        Q_c = e^{-2t} (A_c^2) W_c + 2 e^{-t} sqrt(Delta_t) (A_c Z_c) W_c + Delta_t (Z_c^2) W_c,

    three (N, d) x (d, T) matmuls with ``W_c[i, t] = 1 / (e^{-2t} lambda_ci + Delta_t)``.  Priors are not
    included (the caller restricts to the classes it compares).
    """
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or np.any(times <= 0):
        raise ConfigError("class_log_likelihoods: times must be a 1-D array of positive times")
    flat = images.reshape(images.shape[0], -1).to(torch.float64)
    if flat.shape[1] != model.d:
        raise DataError(f"images have {flat.shape[1]} pixels, the Gaussian classes d = {model.d}")
    noise = torch.randn(flat.shape, dtype=torch.float64, generator=generator)
    tt = torch.as_tensor(times, dtype=torch.float64)
    decay, dlt = torch.exp(-tt), -torch.expm1(-2.0 * tt)
    out = torch.empty(model.k, flat.shape[0], times.size, dtype=torch.float64)
    for c in range(model.k):
        s = decay[None, :] ** 2 * model.eigenvalues[c][:, None] + dlt[None, :]  # (d, T)
        w = 1.0 / s
        logdet = s.log().sum(dim=0)  # (T,)
        vec = model.basis(c)
        for start in range(0, flat.shape[0], chunk):
            a = (flat[start:start + chunk] - model.means[c]) @ vec
            z = noise[start:start + chunk] @ vec
            q = (decay**2) * ((a * a) @ w) + (2.0 * decay * dlt.sqrt()) * ((a * z) @ w) + dlt * ((z * z) @ w)
            out[c, start:start + chunk] = -0.5 * (q + logdet) - 0.5 * model.d * _LOG_2PI
    return out


def same_class_probability(log_likelihoods: torch.Tensor, *,
                           groups: Sequence[int] | None = None) -> torch.Tensor:
    """``sum_g P(g | x_t)^2`` (N, T) from class log-likelihoods (K, N, T) with equal class priors.

    ``groups``: the group of each of the K classes (None: every class its own group).  This is the
    probability that two independent continuations of ``x_t`` end in the same group.
    """
    post = torch.softmax(log_likelihoods, dim=0)  # equal priors cancel
    if groups is not None:
        g = torch.as_tensor(list(groups), dtype=torch.long)
        post = torch.zeros((int(g.max()) + 1, *post.shape[1:]), dtype=post.dtype).index_add_(0, g, post)
    return (post * post).sum(dim=0)


@dataclass(frozen=True)
class PredictedCurve:
    """A predicted cloning curve phi(t) on ``times`` and its 0.775 crossing (bootstrap over images)."""

    times: np.ndarray  # (T,)
    phi: np.ndarray  # (T,)
    t_s: float
    low: float
    high: float


def curve_with_crossing(times: np.ndarray, values: torch.Tensor, *, level: float = PHI_SPECIATION_LEVEL,
                        n_boot: int, generator: torch.Generator,
                        weights: torch.Tensor | None = None) -> tuple[float, np.ndarray]:
    """Crossing of the mean over N of ``values`` (N, T) with ``level`` and its bootstrap replicates.

    Returns ``(point, replicates (n_boot,))`` (replicates that never cross are NaN).  ``weights``: resampling
    weights (n_boot, N) to share between curves (a slope fit resamples each d independently, a ratio of two
    curves resamples both with the same pairs).
    """
    n = values.shape[0]
    w = weights if weights is not None else bootstrap_weights(n, n_boot=n_boot, generator=generator)
    point = crossing_time(times, values.mean(dim=0).numpy(), level)
    boot = (w @ values.to(torch.float64) / n).numpy()  # (n_boot, T)
    return point, np.array([crossing_time(times, row, level) for row in boot])


def _interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    ok = samples[np.isfinite(samples)]
    if ok.size < 0.9 * samples.size or ok.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(ok, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def predicted_curve(log_likelihoods: torch.Tensor, times: np.ndarray, *, n_boot: int,
                    generator: torch.Generator, groups: Sequence[int] | None = None) -> PredictedCurve:
    """The Gaussian-class prediction of phi(t) from (K, N, T) log-likelihoods of balanced noised images."""
    values = same_class_probability(log_likelihoods, groups=groups)  # (N, T)
    point, boot = curve_with_crossing(times, values, n_boot=n_boot, generator=generator)
    lo, hi = _interval(boot)
    return PredictedCurve(np.asarray(times), values.mean(dim=0).numpy(), point, lo, hi)


# ------------------------------------------------------------------------- equal-mean (radial) engine
@dataclass(frozen=True)
class RadialMixtureScore:
    """Exact score of equal-weight zero-mean classes ``N(0, v_c I_k)`` (docs/science.md, equal means).

    ``F(x, t) = -x sum_c p(c | x) / Gamma_c(t)``, ``Gamma_c = Delta_t + v_c e^{-2t}``, with the posterior
    of ``rho = |x|^2`` in ``dim`` = k dimensions: ``log p(c|x) = -rho / (2 Gamma_c) - k/2 log Gamma_c +
    const``.  ``x`` (B, m) may be the full state (m = k) or the radial state ``(r, 0)`` of
    :class:`RadialEulerMaruyama`, which stands for k coordinates: ``dim`` carries k either way.
    """

    variances: tuple[float, ...]
    dim: int

    def log_weights(self, rho: torch.Tensor, t: float) -> torch.Tensor:
        """Unnormalised ``log p(c | rho)`` (B, K) at time t."""
        gam = torch.tensor([theory.gamma(t, sigma=math.sqrt(v)).item() for v in self.variances],
                           dtype=torch.float64)
        return -rho[:, None] / (2.0 * gam) - 0.5 * self.dim * gam.log()

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        rho = (x.to(torch.float64) ** 2).sum(dim=1)
        gam = torch.tensor([theory.gamma(t, sigma=math.sqrt(v)).item() for v in self.variances],
                           dtype=torch.float64)
        w = torch.softmax(self.log_weights(rho, t), dim=1)
        return (-x * (w / gam).sum(dim=1, keepdim=True).to(x.dtype))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Bayes class at t = 0 from ``rho = |x|^2`` (B,) long (0 = the first variance)."""
        rho = (x.to(torch.float64) ** 2).sum(dim=1)
        v = torch.tensor(self.variances, dtype=torch.float64)
        return (-rho[:, None] / (2.0 * v) - 0.5 * self.dim * v.log()).argmax(dim=1)


def chi2_from_normal(k: int, z: torch.Tensor) -> torch.Tensor:
    """A chi-square(k) draw from a standard normal ``z`` by the Wilson-Hilferty cube,
    ``k (1 - c + sqrt(c) z)^3`` with ``c = 2/(9k)`` (clamped at 0).

    Its mean is ``k (1 - c^3)`` and its variance ``2k (1 + O(1/k))``: at k = 63 the mean errs by 6e-6 and
    the tails (|z| < 4) by < 1e-3 relative, far below what a cloning curve resolves.
    """
    c = 2.0 / (9.0 * k)
    return k * torch.clamp(1.0 - c + math.sqrt(c) * z, min=0.0) ** 3


@dataclass(frozen=True)
class RadialEulerMaruyama(EulerMaruyama):
    """Euler-Maruyama for a score ``F(x) = -x g(|x|^2)`` in k dimensions, on the radius alone.

    The state ``(r, 0)`` (B, 2) stands for any ``x`` with ``|x| = r`` (the law is rotation invariant).  The
    full step ``x' = x + eta (x + 2F) + sqrt(2 eta) xi`` gives
    ``|x'|^2 = (r + eta (r + 2 F_r) + sqrt(2 eta) xi_1)^2 + 2 eta chi^2_{k-1}``, with ``xi_1`` the noise
    along x and the chi-square from the other k - 1 components (:func:`chi2_from_normal` of the second
    noise column).  The same update as :class:`sampler.EulerMaruyama`, projected exactly.
    """

    dim: int  # the grid ``times`` and ``n_steps`` are EulerMaruyama's

    @classmethod
    def uniform(cls, *, t_max: float, n_steps: int, dim: int) -> RadialEulerMaruyama:  # type: ignore[override]
        return cls(EulerMaruyama.uniform(t_max=t_max, n_steps=n_steps).times, dim)

    def step(self, x: torch.Tensor, i: int, score: Score, noise: torch.Tensor) -> torch.Tensor:
        t = float(self.times[i])
        eta = t - float(self.times[i + 1])
        r = x[:, :1]
        along = r + eta * (r + 2.0 * score(x, t)[:, :1]) + math.sqrt(2.0 * eta) * noise[:, :1]
        rho = along**2 + 2.0 * eta * chi2_from_normal(self.dim - 1, noise[:, 1:2])
        return torch.cat([rho.sqrt(), torch.zeros_like(rho)], dim=1)


def equal_mean_cloning(t: np.ndarray | float, *, k: int, variances: tuple[float, float],
                       points: int = 4001) -> np.ndarray:
    """Closed-form phi(t) of two equal-weight classes ``N(0, v_+ I_k)``, ``N(0, v_- I_k)``.

    Only ``rho = |x_t|^2`` decides the class: under class c, ``rho = Gamma_c(t) u`` with ``u ~ chi^2_k``, and
    the log-odds is ``L(rho) = -rho/2 (1/Gamma_+ - 1/Gamma_-) - k/2 log(Gamma_+/Gamma_-)``; then
    ``phi = 1/2 sum_c E_c[s(L)^2 + s(-L)^2]``, a 1-D integral per class done by the trapezoid rule on the
    chi-square density over its [1e-13, 1 - 1e-13] quantile range (``points`` nodes: the integrand is smooth
    and the density's tails are cut below 1e-12, so the error is < 1e-7).
    """
    from scipy.stats import chi2

    t_arr = np.atleast_1d(np.asarray(t, dtype=np.float64))
    lo, hi = chi2.ppf(1e-13, k), chi2.isf(1e-13, k)
    u = np.linspace(lo, hi, points)
    dens = chi2.pdf(u, k)
    wts = np.full(points, u[1] - u[0])
    wts[[0, -1]] *= 0.5
    gp = theory.gamma(t_arr, sigma=math.sqrt(variances[0]))[:, None]
    gm = theory.gamma(t_arr, sigma=math.sqrt(variances[1]))[:, None]
    phi = np.zeros(t_arr.size)
    for g in (gp, gm):
        rho = g * u[None, :]
        logit = -0.5 * rho * (1.0 / gp - 1.0 / gm) - 0.5 * k * np.log(gp / gm)
        p = 0.5 * (1.0 + np.tanh(0.5 * logit))
        phi += 0.5 * ((p * p + (1 - p) ** 2) * dens[None, :]) @ wts
    return phi.reshape(np.shape(t))


def equal_mean_t_speciation(k: int | np.ndarray, *, variances: tuple[float, float]) -> np.ndarray:
    """Large-k speciation time of equal-mean classes: ``1/4 log k + 1/2 log(|v_+ - v_-| / (sqrt(2) b*))``.

    At large t the log-odds L is Gaussian with mean ``+-A`` and variance ``2A``, ``A = k eps^2 / 4``,
    ``eps = (v_+ - v_-) e^{-2t} / Gamma`` (Gamma ~ 1 when the variances average to 1): the same law as the
    paper's mixture with ``b^2 = 2A``, so phi = phi(b) (theory.cloning_probability_of_b) and phi = 0.775 at
    b = b* (= 2.0 to 1e-3).  Hence ``e^{-2 t_S} |v_+ - v_-| sqrt(k/2) = b*``.
    """
    b_star = _b_star()
    k = np.asarray(k, dtype=np.float64)
    return 0.25 * np.log(k) + 0.5 * np.log(abs(variances[0] - variances[1]) / (math.sqrt(2.0) * b_star))


def _b_star(level: float = PHI_SPECIATION_LEVEL) -> float:
    """The b where ``phi(b) = level`` (bisection on theory.cloning_probability_of_b)."""
    lo, hi = 0.0, 20.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if float(theory.cloning_probability_of_b(mid)) < level:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------- the GM experiment
@dataclass(frozen=True)
class GMConfig:
    """The ``speciation.gm`` section: equal-mean, mean-separated and nested mixtures (docs/science.md)."""

    dims: tuple[int, ...] = (64, 256, 1024, 4096, 16384)
    pairs: int = 4000
    t_max: float = 10.0
    n_steps: int = 1000
    branch_step: float = 0.1  # branch times branch_step, 2 branch_step, ... up to branch_max
    branch_max: float = 6.0
    variances: tuple[float, float] = (1.5, 0.5)  # equal-mean classes N(0, v_+ I), N(0, v_- I)
    subspace_fraction: float = 0.25  # the subspace variant: the variances differ on k = fraction d axes
    group_mu: float = 1.0  # nested: group means +-mu_g sqrt(d) along one axis
    class_mu: float = 0.35  # nested: class offsets +-mu_c sqrt(d) along a second axis
    n_boot: int = 300
    check_dim: int = 256  # full-dimensional check of the radial and the 2-D reductions (0 = none)
    check_pairs: int = 500
    uturn_starts: int = 4000  # U-turns per family, d and time (0 = cloning only)

    def __post_init__(self) -> None:
        if self.variances[0] == self.variances[1] or min(self.variances) <= 0:
            raise ConfigError(f"speciation.gm.variances: {list(self.variances)} must be two different "
                              "positive variances")
        if not 0 < self.subspace_fraction <= 1:
            raise ConfigError("speciation.gm.subspace_fraction must lie in (0, 1]")
        if self.uturn_starts < 0:
            raise ConfigError("speciation.gm.uturn_starts must be >= 0 (0 = no U-turns)")
        if not 0 < self.class_mu < self.group_mu:
            raise ConfigError("speciation.gm: need 0 < class_mu < group_mu (a small split inside large "
                              "groups)")

    def branch_times(self) -> tuple[float, ...]:
        count = int(round(self.branch_max / self.branch_step))
        return tuple(round(self.branch_step * (i + 1), 10) for i in range(count))


FAMILIES = ("equal_mean", "equal_mean_subspace", "mean_separated", "nested_group", "nested_class")
"""Curves of the GM experiment: equal-mean isotropic, equal-mean on a subspace, the paper's mixture, and
the nested mixture's group level and class level (same class among pairs in the same group)."""

PROTOCOLS = ("cloning", "uturn")
"""How a curve is measured: ``cloning`` (two continuations of one noised trunk state agree on the class)
or ``uturn`` (a sample of a known class, noised exactly to t and run back to 0, returns to its class).
With the exact score both give the same curve: ``E_c E_{x_t | c} p(c | x_t) = E_{x_t} sum_c p(c | x_t)^2``."""

GM_CURVE_COLUMNS = ("family", "protocol", "d", "k", "t", "phi", "stderr", "phi_theory", "pairs", "engine")
GM_TIMES_COLUMNS = ("family", "protocol", "d", "k", "t_S", "low", "high", "t_s_theory", "t_s_asymptotic",
                    "pairs", "engine")
GM_SLOPE_COLUMNS = ("family", "protocol", "slope", "low", "high", "intercept", "slope_theory",
                    "slope_expected", "dims")


def _agreement(classes_trunk: torch.Tensor, classes_clones: torch.Tensor) -> torch.Tensor:
    return (classes_clones == classes_trunk[None, :]).to(torch.float64)  # (B, N)


def _sweep(score, integrator, x_start: torch.Tensor, branch: tuple[float, ...], generator: torch.Generator):
    idx = [int(torch.argmin((integrator.times - b).abs())) for b in branch]
    sweep = clone_sweep(x_start, integrator=integrator, score=score, branch_indices=idx, generator=generator)
    # clone_sweep orders clones by ascending grid index = descending time; return ascending time
    return sweep.trunk, sweep.clones.flip(0), np.asarray(sweep.branch_times)[::-1].copy()


def uturn_sweep(draw, *, score: Score, integrator: Integrator, classify, branch: tuple[float, ...],
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """U-turns at every branch time: exact draws of the noised classes at t (``draw(t, generator)`` ->
    states, classes), run back to t = 0 in one staggered batch (:func:`sampler.staggered_reverse`) and
    classified.  Returns the start and end classes (B, M) and the grid times (B,), ascending."""
    indices = sorted(set(snap_to_grid(list(branch), integrator)))  # ascending index = descending t
    starts: list[torch.Tensor] = []

    def join(i: int) -> torch.Tensor:
        x, c = draw(float(integrator.times[i]), generator)
        starts.append(c)
        return x

    state = staggered_reverse(indices, join, integrator=integrator, score=score, generator=generator)
    ends = classify(state).reshape(len(indices), starts[0].shape[0])
    times = np.asarray([float(integrator.times[i]) for i in indices])
    return torch.stack(starts).flip(0), ends.flip(0), times[::-1].copy()


def equal_mean_uturns(*, k: int, variances: tuple[float, float], starts: int, branch: tuple[float, ...],
                      t_max: float, n_steps: int, generator: torch.Generator):
    """Returned-to-class indicator (B, M) of U-turns for the equal-mean classes in k dimensions, and the
    times, with the radial engine: ``|x_t|^2 = Gamma_c(t) chi^2_k`` drawn exactly under each class."""
    half = starts // 2
    score = RadialMixtureScore(tuple(variances), k)
    integrator = RadialEulerMaruyama.uniform(t_max=t_max, n_steps=n_steps, dim=k)
    classes = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(half, dtype=torch.long)])

    def draw(t: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        gam = torch.tensor([float(theory.gamma(t, sigma=math.sqrt(v))) for v in variances],
                           dtype=torch.float64)
        z = torch.randn(2 * half, dtype=torch.float64, generator=gen)
        rho = gam[classes] * chi2_from_normal(k, z)
        return torch.stack([rho.sqrt(), torch.zeros_like(rho)], dim=1), classes

    begun, ends, times = uturn_sweep(draw, score=score, integrator=integrator, classify=score.classify,
                                     branch=branch, generator=generator)
    return (begun == ends).to(torch.float64), times


def mean_separated_model(d: int) -> GaussianClasses:
    """The paper's mixture ``N(+-m, I)`` with ``|m|^2 = d`` on its one informative axis (the other d - 1
    coordinates are independent OU processes that never enter the class)."""
    return GaussianClasses.isotropic(torch.tensor([[math.sqrt(d)], [-math.sqrt(d)]], dtype=torch.float64),
                                     [1.0, 1.0])


def gaussian_classes_uturns(model: GaussianClasses, *, starts: int, branch: tuple[float, ...], t_max: float,
                            n_steps: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor,
                                                                               np.ndarray]:
    """Start and end classes (B, M) of U-turns in a :class:`GaussianClasses` mixture (balanced starts)."""
    integrator = EulerMaruyama.uniform(t_max=t_max, n_steps=n_steps)

    def draw(t: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return model.sample_pt(starts // model.k, t=t, generator=gen)

    return uturn_sweep(draw, score=model.score, integrator=integrator, classify=model.classify,
                       branch=branch, generator=generator)


def equal_mean_sweep(*, k: int, variances: tuple[float, float], pairs: int, branch: tuple[float, ...],
                     t_max: float, n_steps: int, generator: torch.Generator, engine: str = "reduced"):
    """Same-class indicator (B, N) of cloning for the equal-mean classes in k dimensions and its times.

    ``reduced``: the radial engine (exact projection of Euler-Maruyama, chi-square by Wilson-Hilferty);
    ``full``: x in R^k with :class:`GaussianClasses` (the check of the reduction).
    """
    half = pairs // 2
    if engine == "reduced":
        score = RadialMixtureScore(tuple(variances), k)
        integrator = RadialEulerMaruyama.uniform(t_max=t_max, n_steps=n_steps, dim=k)
        # exact samples of P_T: rho = Gamma_c(T) chi^2_k, class c with probability 1/2 (balanced)
        gam = torch.tensor([float(theory.gamma(t_max, sigma=math.sqrt(v))) for v in variances])
        u = chi2_from_normal(k, torch.randn(2 * half, dtype=torch.float64, generator=generator))
        rho = torch.cat([gam[0] * u[:half], gam[1] * u[half:]])
        x0 = torch.stack([rho.sqrt(), torch.zeros_like(rho)], dim=1)
        classify = score.classify
    else:
        model = GaussianClasses.isotropic(torch.zeros(2, k), variances)
        score = model.score
        integrator = EulerMaruyama.uniform(t_max=t_max, n_steps=n_steps)
        x0, _ = model.sample_pt(half, t=t_max, generator=generator)
        classify = model.classify
    trunk, clones, times = _sweep(score, integrator, x0, branch, generator)
    b, n = clones.shape[0], clones.shape[1]
    return _agreement(classify(trunk), classify(clones.reshape(b * n, -1)).reshape(b, n)), times


def nested_model(d: int, *, group_mu: float, class_mu: float, reduced: bool = True) -> GaussianClasses:
    """Four classes ``N(+-g e_1 +- c e_2, I)`` with ``g = mu_g sqrt(d)``, ``c = mu_c sqrt(d)``: classes 0, 1
    form group 0 (+g), classes 2, 3 group 1 (-g).  ``reduced``: the exact 2-D projection on (e_1, e_2)
    (the other d - 2 coordinates are independent OU processes that never enter the class)."""
    g, c = group_mu * math.sqrt(d), class_mu * math.sqrt(d)
    width = 2 if reduced else d
    means = torch.zeros(4, width, dtype=torch.float64)
    means[:, 0] = torch.tensor([g, g, -g, -g])
    means[:, 1] = torch.tensor([c, -c, c, -c])
    return GaussianClasses.isotropic(means, [1.0] * 4)


NESTED_GROUPS = (0, 0, 1, 1)


def nested_sweep(*, d: int, group_mu: float, class_mu: float, pairs: int, branch: tuple[float, ...],
                 t_max: float, n_steps: int, generator: torch.Generator, engine: str = "reduced"):
    """Same-group and same-class indicators (B, N) of cloning in the nested four-class mixture."""
    model = nested_model(d, group_mu=group_mu, class_mu=class_mu, reduced=engine == "reduced")
    integrator = EulerMaruyama.uniform(t_max=t_max, n_steps=n_steps)
    x0, _ = model.sample_pt(pairs // 4, t=t_max, generator=generator)
    trunk, clones, times = _sweep(model.score, integrator, x0, branch, generator)
    b, n = clones.shape[0], clones.shape[1]
    ct = model.classify(trunk)
    cc = model.classify(clones.reshape(b * n, -1)).reshape(b, n)
    groups = torch.as_tensor(NESTED_GROUPS)
    return _agreement(groups[ct], groups[cc]), _agreement(ct, cc), times


def _theory_curve(family: str, t: np.ndarray, *, d: int, k: int, cfg: GMConfig) -> np.ndarray:
    if family in ("equal_mean", "equal_mean_subspace"):
        return equal_mean_cloning(t, k=k, variances=cfg.variances)
    if family == "mean_separated":
        return theory.cloning_probability(t, d=d)
    if family == "nested_group":
        return theory.cloning_probability_spike(t, norm_m2=d * cfg.group_mu**2)
    if family == "nested_class":  # the classes of one group are the paper's mixture along e_2
        return theory.cloning_probability_spike(t, norm_m2=d * cfg.class_mu**2)
    raise ValueError(family)


def _asymptotic(family: str, *, d: int, k: int, cfg: GMConfig) -> float:
    if family in ("equal_mean", "equal_mean_subspace"):
        return float(equal_mean_t_speciation(k, variances=cfg.variances))
    mu = {"mean_separated": 1.0, "nested_group": cfg.group_mu, "nested_class": cfg.class_mu}[family]
    return 0.5 * math.log(d * mu**2)


@functools.lru_cache(maxsize=256)
def _theory_crossing(family: str, *, d: int, k: int, cfg: GMConfig) -> float:
    """The closed-form crossing: the last sign change of phi - 0.775 on a 400-point grid, then Brent's
    root on the closed form (to 1e-10; cached, as cloning and U-turns of one family and d share it)."""
    from scipy.optimize import brentq

    def gap(t: float | np.ndarray) -> np.ndarray:
        return np.asarray(_theory_curve(family, np.atleast_1d(np.asarray(t, dtype=np.float64)), d=d, k=k,
                                        cfg=cfg)) - PHI_SPECIATION_LEVEL

    grid = np.linspace(0.01, cfg.t_max, 400)
    values = gap(grid)
    changes = np.nonzero(np.sign(values[:-1]) * np.sign(values[1:]) <= 0)[0]
    if changes.size == 0:
        return float("nan")
    j = int(changes[-1])
    if values[j] == 0.0:
        return float(grid[j])
    return float(brentq(lambda t: float(gap(t)[0]), grid[j], grid[j + 1], xtol=1e-10))


@dataclass(frozen=True)
class GMResult:
    curves: pd.DataFrame
    times: pd.DataFrame
    slopes: pd.DataFrame
    replicates: dict[str, np.ndarray] = field(default_factory=dict)  # "family/protocol" -> (n_boot, D)


def _measured(agree: torch.Tensor, times: np.ndarray, *, n_boot: int, generator: torch.Generator,
              denominator: torch.Tensor | None = None):
    """phi (B,), its bootstrap SE, and the crossing with replicates; with ``denominator`` the curve is the
    ratio of the two means (same class among pairs in the same group), resampled jointly."""
    n = agree.shape[1]
    w = bootstrap_weights(n, n_boot=n_boot, generator=generator)
    boot = (w @ agree.T / n)  # (n_boot, B)
    phi = agree.mean(dim=1)
    if denominator is not None:
        boot = boot / (w @ denominator.T / n)
        phi = phi / denominator.mean(dim=1)
    boot_np = boot.numpy()
    point = crossing_time(times, phi.numpy(), PHI_SPECIATION_LEVEL)
    reps = np.array([crossing_time(times, row, PHI_SPECIATION_LEVEL) for row in boot_np])
    return phi.numpy(), boot_np.std(axis=0, ddof=1), point, reps


def _entry(k: int, agree: torch.Tensor, times: np.ndarray, *, cfg: GMConfig, generator: torch.Generator,
           denominator: torch.Tensor | None = None) -> tuple:
    """One measured curve of the GM experiment: (k, pairs or starts, times, phi, SE, crossing, replicates)."""
    return (k, agree.shape[1], times, *_measured(agree, times, n_boot=cfg.n_boot, generator=generator,
                                                 denominator=denominator))


def fit_slope(log_d: np.ndarray, t_s: np.ndarray,
              replicates: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares slope and intercept of t_S against log d, with the percentile 95 % interval of the slope
    over bootstrap replicates (``replicates`` (R, D): each d resampled independently; a replicate with a
    missing crossing is dropped)."""
    design = np.stack([log_d, np.ones_like(log_d)], axis=1)
    slope, intercept = np.linalg.lstsq(design, t_s, rcond=None)[0]
    ok = np.all(np.isfinite(replicates), axis=1)
    coefs = np.linalg.lstsq(design, replicates[ok].T, rcond=None)[0]
    lo, hi = _interval(coefs[0]) if ok.mean() >= 0.9 else (math.nan, math.nan)
    return float(slope), float(lo), float(hi), float(intercept)


def gm_experiment(cfg: GMConfig, *, seed: int, progress: bool = False) -> GMResult:
    """Every family at every d (reduced engines) plus the full-dimensional checks at ``check_dim``, the
    crossings with intervals, and the slopes of t_S against log d with bootstrap intervals (one run)."""
    branch = cfg.branch_times()
    curves, rows = [], []
    reps: dict[tuple[str, str], list[np.ndarray]] = {}
    jobs = [(d, "reduced", cfg.pairs) for d in cfg.dims]
    if cfg.check_dim:
        jobs.append((cfg.check_dim, "full", cfg.check_pairs))
    if progress:
        from diffusion_regimes.progress import progress as bar

        jobs = bar(jobs, desc="GM speciation", unit="d")
    for d, engine, pairs in jobs:
        gen = torch.Generator().manual_seed(derived_seed(seed, "speciation-gm", d, engine, pairs))
        measured: dict[tuple[str, str], tuple] = {}
        ks = {"equal_mean": d, "equal_mean_subspace": max(2, int(round(cfg.subspace_fraction * d)))}
        for family, k in ks.items():
            if engine == "full" and family == "equal_mean_subspace":
                continue
            agree, times = equal_mean_sweep(k=k, variances=cfg.variances, pairs=pairs, branch=branch,
                                            t_max=cfg.t_max, n_steps=cfg.n_steps, generator=gen,
                                            engine=engine)
            measured[family, "cloning"] = _entry(k, agree, times, cfg=cfg, generator=gen)
        if engine == "reduced":
            from diffusion_regimes.gaussian_mixture import GaussianMixture, speciation

            res = speciation(GaussianMixture.uniform(d), engine="reduced", pairs=pairs, branch_times=branch,
                             t_max=cfg.t_max, n_steps=cfg.n_steps, level=PHI_SPECIATION_LEVEL, n_boot=2,
                             generator=gen, dtype=torch.float64)
            order = np.argsort(res.branch_times)
            agree = res.agree.to(torch.float64)[order]
            times = res.branch_times[order]
            measured["mean_separated", "cloning"] = _entry(d, agree, times, cfg=cfg, generator=gen)
        group, same, times = nested_sweep(d=d, group_mu=cfg.group_mu, class_mu=cfg.class_mu, pairs=pairs,
                                          branch=branch, t_max=cfg.t_max, n_steps=cfg.n_steps, generator=gen,
                                          engine=engine)
        measured["nested_group", "cloning"] = _entry(d, group, times, cfg=cfg, generator=gen)
        measured["nested_class", "cloning"] = _entry(d, same, times, cfg=cfg, generator=gen,
                                                     denominator=group)
        if cfg.uturn_starts and engine == "reduced":
            measured.update(_gm_uturns(d, ks, cfg=cfg, branch=branch, generator=gen))
        for (family, protocol), (k, count, times, phi, se, point, rep) in measured.items():
            lo, hi = _interval(rep)
            curves.append(pd.DataFrame({"family": family, "protocol": protocol, "d": d, "k": k, "t": times,
                                        "phi": phi, "stderr": se,
                                        "phi_theory": _theory_curve(family, times, d=d, k=k, cfg=cfg),
                                        "pairs": count, "engine": engine}))
            rows.append({"family": family, "protocol": protocol, "d": d, "k": k, "t_S": point, "low": lo,
                         "high": hi, "t_s_theory": _theory_crossing(family, d=d, k=k, cfg=cfg),
                         "t_s_asymptotic": _asymptotic(family, d=d, k=k, cfg=cfg), "pairs": count,
                         "engine": engine})
            if engine == "reduced":
                reps.setdefault((family, protocol), []).append(rep)
    times_frame = pd.DataFrame(rows, columns=list(GM_TIMES_COLUMNS))
    slopes = []
    expected = {"equal_mean": 0.25, "equal_mean_subspace": 0.25, "mean_separated": 0.5, "nested_group": 0.5,
                "nested_class": 0.5}
    for family, protocol in itertools.product(FAMILIES, PROTOCOLS):
        part = times_frame[(times_frame.family == family) & (times_frame.protocol == protocol)
                           & (times_frame.engine == "reduced")]
        if len(part) < 2:
            continue
        log_d = np.log(part["d"].to_numpy(dtype=np.float64))
        slope, lo, hi, intercept = fit_slope(log_d, part["t_S"].to_numpy(),
                                             np.stack(reps[family, protocol], axis=1))
        theory_slope = float(np.polyfit(log_d, part["t_s_theory"].to_numpy(), 1)[0])
        slopes.append({"family": family, "protocol": protocol, "slope": slope, "low": lo, "high": hi,
                       "intercept": intercept, "slope_theory": theory_slope,
                       "slope_expected": expected[family],
                       "dims": " ".join(str(int(d)) for d in part["d"])})
    return GMResult(pd.concat(curves, ignore_index=True)[list(GM_CURVE_COLUMNS)], times_frame,
                    pd.DataFrame(slopes, columns=list(GM_SLOPE_COLUMNS)),
                    {f"{f}/{p}": np.stack(r, axis=1) for (f, p), r in reps.items() if r})


def _gm_uturns(d: int, ks: dict[str, int], *, cfg: GMConfig, branch: tuple[float, ...],
               generator: torch.Generator) -> dict[tuple[str, str], tuple]:
    """The U-turn measurement of every family at one d (reduced engines), keyed (family, "uturn")."""
    starts = cfg.uturn_starts
    out: dict[tuple[str, str], tuple] = {}
    for family, k in ks.items():
        back, times = equal_mean_uturns(k=k, variances=cfg.variances, starts=starts, branch=branch,
                                        t_max=cfg.t_max, n_steps=cfg.n_steps, generator=generator)
        out[family, "uturn"] = _entry(k, back, times, cfg=cfg, generator=generator)
    begun, ends, times = gaussian_classes_uturns(mean_separated_model(d), starts=starts, branch=branch,
                                                 t_max=cfg.t_max, n_steps=cfg.n_steps, generator=generator)
    back = (begun == ends).to(torch.float64)
    out["mean_separated", "uturn"] = _entry(d, back, times, cfg=cfg, generator=generator)
    model = nested_model(d, group_mu=cfg.group_mu, class_mu=cfg.class_mu)
    begun, ends, times = gaussian_classes_uturns(model, starts=starts, branch=branch, t_max=cfg.t_max,
                                                 n_steps=cfg.n_steps, generator=generator)
    groups = torch.as_tensor(NESTED_GROUPS)
    group = (groups[begun] == groups[ends]).to(torch.float64)
    same = (begun == ends).to(torch.float64)
    out["nested_group", "uturn"] = _entry(d, group, times, cfg=cfg, generator=generator)
    out["nested_class", "uturn"] = _entry(d, same, times, cfg=cfg, generator=generator, denominator=group)
    return out


# ------------------------------------------------------------------------------ real data: predictor
PREDICTOR_COLUMNS = ("source", "class_a", "class_b", "t_s_gauss", "t_s_gauss_low", "t_s_gauss_high",
                     "images_per_class")
"""Columns of the predictor table (results/speciation/predictor_pairs.csv): one row per class pair."""


@dataclass(frozen=True)
class PredictorConfig:
    """The ``speciation.predictor`` section: the Gaussian-class predictor of t_S."""

    images_per_class: int = 1000  # noised images per class the curve averages over (all images fit it)
    t_min: float = 0.02
    t_max: float = 4.0
    n_times: int = 160
    n_boot: int = 200

    def times(self) -> np.ndarray:
        if not 0 < self.t_min < self.t_max or self.n_times < 2:
            raise ConfigError("speciation.predictor: need 0 < t_min < t_max and n_times >= 2")
        return np.linspace(self.t_min, self.t_max, self.n_times)


def balanced_rows(labels: torch.Tensor, *, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``per_class`` images drawn without replacement from each class (all when fewer), sorted by
    class: (M,) long."""
    y = labels.reshape(-1).to(torch.long)
    rows = []
    for c in range(int(y.max()) + 1):
        members = torch.nonzero(y == c).reshape(-1)
        take = min(per_class, members.numel())
        rows.append(members[torch.randperm(members.numel(), generator=generator)[:take]])
    return torch.cat(rows)


def pair_predictions(images: torch.Tensor, labels: torch.Tensor, names: Sequence[str], *,
                     cfg: PredictorConfig,
                     seed: int, source: str, pairs: Sequence[tuple[int, int]] | None = None,
                     groups: Sequence[Sequence[int]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gaussian-class predicted phi(t) and t_S of class pairs (every pair of ``names`` by default).

    ``images`` (N, ...), ``labels`` (N,) in 0..K-1.  The K Gaussians are fitted on all images (one
    eigendecomposition per class); ``cfg.images_per_class`` images per class are noised once (one noise
    vector each) and projected on every class's eigenvectors once (:func:`class_log_likelihoods`); each
    pair then only restricts the (K, N, T) log-likelihoods to its two classes and rows.  ``groups``: extra
    rows for a K'-class subset (its classes, every class its own group; the group-level curve of nested
    subsets is :func:`group_curves`).  Returns ``(table, curves)``: :data:`PREDICTOR_COLUMNS` rows, and the
    curves (source, class_a, class_b, t, phi_gauss).
    """
    k = len(names)
    model = GaussianClasses.fit(images, labels, classes=k)
    gen = torch.Generator().manual_seed(derived_seed(seed, "speciation-predictor", source))
    rows = balanced_rows(labels, per_class=cfg.images_per_class, generator=gen)
    times = cfg.times()
    ll = class_log_likelihoods(model, images[rows], times, generator=gen)
    y = labels.reshape(-1)[rows]
    table, curves = [], []
    for a, b in (pairs if pairs is not None else itertools.combinations(range(k), 2)):
        keep = (y == a) | (y == b)
        curve = predicted_curve(ll[[a, b]][:, keep], times, n_boot=cfg.n_boot, generator=gen)
        table.append({"source": source, "class_a": names[a], "class_b": names[b], "t_s_gauss": curve.t_s,
                      "t_s_gauss_low": curve.low, "t_s_gauss_high": curve.high,
                      "images_per_class": int(min(keep.sum().item() // 2, cfg.images_per_class))})
        curves.append(pd.DataFrame({"source": source, "class_a": names[a], "class_b": names[b], "t": times,
                                    "phi_gauss": curve.phi}))
    return pd.DataFrame(table, columns=list(PREDICTOR_COLUMNS)), pd.concat(curves, ignore_index=True)


# ----------------------------------------------------------------------------- real data: measurement
@dataclass(frozen=True)
class MeasureConfig:
    """The ``speciation.measure`` section: exact-score cloning on real class sets (docs/science.md
    section 5), labelled by the nearest training image (the exact score ends on a training image, so its
    class is the sample's class: no classifier is needed)."""

    n: int = 12000  # training images of a Fashion-MNIST pair (n/2 per class; 12 000 = the whole pair)
    pairs: int = 256  # clone pairs per branch time
    steps: int = 100  # respaced DDPM sampler steps K (the Fashion study's)
    chunk_pairs: int = 64  # pairs per resumable chunk
    branch_t_min: float = 0.1
    branch_t_max: float = 2.5
    branches: int = 13  # evenly spaced branch times on [branch_t_min, branch_t_max]
    n_boot: int = 400
    max_chunk_bytes: int = 64 * 2**20

    def branch_times(self) -> np.ndarray:
        if not 0 < self.branch_t_min < self.branch_t_max or self.branches < 2:
            raise ConfigError("speciation.measure: need 0 < branch_t_min < branch_t_max and branches >= 2")
        return np.linspace(self.branch_t_min, self.branch_t_max, self.branches)

    def regimes_spec(self):
        """The cloning machinery's settings (:class:`regimes.RegimesSpec`) for these sweeps."""
        from diffusion_regimes.regimes import RegimesSpec

        # t̂_C is not read here: nearest_check_every counts DDPM steps, and 1000 (the schedule's T) keeps
        # only the checks at k = 1000 and 0, which every respaced grid has
        return RegimesSpec(chunk_pairs=self.chunk_pairs, n_boot=self.n_boot, strip_times=2,
                           max_chunk_bytes=self.max_chunk_bytes, nearest_check_every=1000)


MEASURED_COLUMNS = ("source", "class_a", "class_b", "n", "pairs", "t_s_crossing", "t_s_crossing_low",
                    "t_s_crossing_high", "t_s_fit", "t_s_fit_low", "t_s_fit_high", "phi_t_min",
                    "memorised_fraction", "sweep_seconds")


def measure_classes(images: torch.Tensor, labels: torch.Tensor, *, cfg: MeasureConfig, seed: int,
                    classes: int = 2, chunk_dir=None, progress: bool = False):
    """Exact-score cloning sweep on ``images`` (n, C, H, W) with class ``labels`` (n,) in 0..classes-1:
    the :class:`regimes.CloningResult` (phi = same class of the nearest training image)."""
    from diffusion_regimes.law import nearest_class_labeller
    from diffusion_regimes.regimes import cloning_experiment
    from diffusion_regimes.score import EmpiricalScore

    flat = images.reshape(images.shape[0], -1).to(torch.float64)
    return cloning_experiment(
        score=EmpiricalScore(flat, max_chunk_bytes=cfg.max_chunk_bytes), training=images,
        labeller=nearest_class_labeller(images, labels, classes=classes, max_chunk_bytes=cfg.max_chunk_bytes),
        spec=cfg.regimes_spec(), n_pairs=cfg.pairs, steps=cfg.steps, times=cfg.branch_times(), seed=seed,
        chunk_dir=chunk_dir, progress=progress)


def measured_row(result, *, source: str, class_a: str, class_b: str, n: int) -> dict:
    """One :data:`MEASURED_COLUMNS` row from a pair's cloning result."""
    s = result.summary()
    return {"source": source, "class_a": class_a, "class_b": class_b, "n": n, "pairs": result.n_pairs,
            **{key: s[key] for key in MEASURED_COLUMNS[5:12]}, "memorised_fraction": s["memorised_fraction"],
            "sweep_seconds": result.seconds}


GROUP_COLUMNS = ("t", "phi_group", "phi_group_se", "phi_class", "phi_class_se", "phi_within", "phi_within_se",
                 "pred_group", "pred_class", "pred_within", "pairs")
"""Columns of the K-class agreement curves (results/speciation/four_class_curves.csv): per branch time, the
fraction of clone pairs in the same group, in the same class, and in the same class among those in the same
group (measured, with bootstrap SEs), and the Gaussian-class predictions of the three."""


def measure_groups(images: torch.Tensor, labels: torch.Tensor, *, groups: Sequence[int], cfg: MeasureConfig,
                   seed: int, progress: bool = False) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Exact-score shared-trunk cloning on a K-class set, labelled by the nearest training image.

    Returns ``(times (B,), same_group (B, N), same_class (B, N))`` float64 0/1.  Chunks of
    ``cfg.chunk_pairs`` trunks, chunk c seeded by ``derived_seed(seed, "groups-chunk", c)`` (the result does
    not depend on the chunking).  Built on :func:`sampler.clone_sweep` and the respaced DDPM sampler, as
    the two-class sweeps.
    """
    from diffusion_regimes.measures import nearest_index
    from diffusion_regimes.regimes import branch_indices, sweep_integrator
    from diffusion_regimes.schedule import DDPMSchedule
    from diffusion_regimes.score import EmpiricalScore

    flat = images.reshape(images.shape[0], -1).to(torch.float64)
    score = EmpiricalScore(flat, max_chunk_bytes=cfg.max_chunk_bytes)
    integrator = sweep_integrator(steps=cfg.steps, schedule=DDPMSchedule())
    idx = branch_indices(cfg.branch_times(), integrator)  # ascending branch time
    group_of = torch.as_tensor(list(groups), dtype=torch.long)
    y = labels.reshape(-1).to(torch.long)
    same_group, same_class = [], []
    chunks = range(0, cfg.pairs, cfg.chunk_pairs)
    if progress:
        from diffusion_regimes.progress import progress as bar

        chunks = bar(chunks, desc="K-class cloning", unit="chunk")
    for c, start in enumerate(chunks):
        size = min(cfg.chunk_pairs, cfg.pairs - start)
        gen = torch.Generator().manual_seed(derived_seed(seed, "groups-chunk", c))
        x = torch.randn((size, *images.shape[1:]), dtype=torch.float64, generator=gen)
        sweep = clone_sweep(x, integrator=integrator, score=score, branch_indices=idx.tolist(), generator=gen)
        position = {int(i): j for j, i in enumerate(sweep.branch_indices)}
        clones = sweep.clones[[position[int(i)] for i in idx]]
        trunk = y[nearest_index(sweep.trunk, flat, max_chunk_bytes=cfg.max_chunk_bytes)]
        ends = y[nearest_index(clones.reshape(-1, *images.shape[1:]), flat,
                               max_chunk_bytes=cfg.max_chunk_bytes)].reshape(len(idx), size)
        same_class.append((ends == trunk).to(torch.float64))
        same_group.append((group_of[ends] == group_of[trunk]).to(torch.float64))
    times = integrator.times.numpy()[idx]
    return times, torch.cat(same_group, dim=1), torch.cat(same_class, dim=1)


def group_curves(times: np.ndarray, same_group: torch.Tensor, same_class: torch.Tensor, *,
                 predicted: dict[str, np.ndarray], n_boot: int, generator: torch.Generator
                 ) -> tuple[pd.DataFrame, dict[str, tuple[float, float, float]]]:
    """The K-class agreement curves (:data:`GROUP_COLUMNS`) and the 0.775 crossings with 95 % intervals of
    the group curve and of the within-group class curve (same class among pairs in the same group).

    ``predicted``: ``pred_group``, ``pred_class``, ``pred_within`` at ``times`` (Gaussian-class predictor).
    Pairs are resampled jointly for the three curves (the ratio uses the same resample on top and bottom).
    """
    n = same_group.shape[1]
    w = bootstrap_weights(n, n_boot=n_boot, generator=generator)
    bg, bc = (w @ same_group.T / n).numpy(), (w @ same_class.T / n).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample without same-group pairs: NaN
        bw = bc / bg
    g, c = same_group.mean(dim=1).numpy(), same_class.mean(dim=1).numpy()
    frame = pd.DataFrame({"t": times, "phi_group": g, "phi_group_se": bg.std(axis=0, ddof=1), "phi_class": c,
                          "phi_class_se": bc.std(axis=0, ddof=1), "phi_within": c / g,
                          "phi_within_se": bw.std(axis=0, ddof=1), **predicted, "pairs": n})
    crossings = {}
    for name, point, boot in (("group", g, bg), ("within", c / g, bw)):
        reps = np.array([crossing_time(times, row, PHI_SPECIATION_LEVEL) for row in boot])
        crossings[name] = (crossing_time(times, point, PHI_SPECIATION_LEVEL), *_interval(reps))
    return frame[list(GROUP_COLUMNS)], crossings


def predicted_group_curves(images: torch.Tensor, labels: torch.Tensor, *, groups: Sequence[int],
                           times: np.ndarray, cfg: PredictorConfig, seed: int) -> dict[str, np.ndarray]:
    """Gaussian-class predictions of the group, class and within-group agreement at ``times``."""
    k = len(groups)
    model = GaussianClasses.fit(images, labels, classes=k)
    gen = torch.Generator().manual_seed(derived_seed(seed, "speciation-groups-predictor"))
    rows = balanced_rows(labels, per_class=cfg.images_per_class, generator=gen)
    ll = class_log_likelihoods(model, images[rows], np.asarray(times), generator=gen)
    group = same_class_probability(ll, groups=groups).mean(dim=0).numpy()
    same = same_class_probability(ll).mean(dim=0).numpy()
    return {"pred_group": group, "pred_class": same, "pred_within": same / group}


# ------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class FourClassConfig:
    """The ``speciation.four_class`` section: a Fashion-MNIST subset of two groups of two classes."""

    groups: tuple[tuple[str, ...], ...] = ()  # e.g. [[sneaker, sandal], [trouser, dress]]; empty = off
    per_class: int = 3000  # training images per class (4 x 3000 = the cost of one 12 000-image pair)
    seed: int = 0


@dataclass(frozen=True)
class SpeciationSpec:
    """The ``speciation:`` config section (docs/science.md, "Speciation as Bayes classification")."""

    gm: GMConfig = field(default_factory=GMConfig)
    gm_enabled: bool = True
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    # prepared subsets (keys of `datasets:`) whose pair is predicted and measured at its whole n
    datasets: tuple[str, ...] = ()
    fashion: bool = False  # predict all 45 Fashion-MNIST pairs (needs the IDX files)
    fashion_path: str | None = None  # folder of the IDX files (None: the Debian package's)
    fashion_pairs: tuple[tuple[str, str], ...] = ()  # Fashion-MNIST pairs measured by exact-score cloning
    four_class: FourClassConfig = field(default_factory=FourClassConfig)

    def __post_init__(self) -> None:
        for pair in self.fashion_pairs:
            if len(pair) != 2:
                raise ConfigError(f"speciation.fashion_pairs: {list(pair)} is not a pair of class names")
        if self.four_class.groups and (len(self.four_class.groups) < 2 or
                                       any(len(g) < 1 for g in self.four_class.groups)):
            raise ConfigError("speciation.four_class.groups: give at least two groups of class names")


def pair_slug(class_a: str, class_b: str) -> str:
    """File-name key of a Fashion-MNIST pair: ``fashion_<a>_<b>`` in the forgiving spelling of the reader."""
    from diffusion_regimes.data.sources import fashion_key

    return f"fashion_{fashion_key(class_a)}_{fashion_key(class_b)}"


def fashion_labels(names: Sequence[str]) -> list[int]:
    """Fashion-MNIST labels of class names (any spelling the reader accepts), with a clear error."""
    from diffusion_regimes.data.sources import FASHION_NAMES, fashion_key, fashion_names

    valid = fashion_names()
    out = []
    for name in names:
        if fashion_key(name) not in valid:
            raise ConfigError(f"speciation: unknown Fashion-MNIST class {name!r}; valid names are "
                              f"{list(FASHION_NAMES)}")
        out.append(valid[fashion_key(name)])
    if len(set(out)) != len(out):
        raise ConfigError(f"speciation: classes {list(names)} repeat a class")
    return out


def fashion_class_set(folder, names: Sequence[str], *, per_class: int, seed: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` training images of each named Fashion-MNIST class, prepared as the two-class subsets
    (28 x 28 zero-padded to 32 x 32, pixels in [0, 1], one mean removed over all images and pixels; the
    images of a class drawn by the subsets' seeded permutation): images (K per_class, 1, 32, 32) float32,
    labels (K per_class,) in 0..K-1 in the order of ``names``."""
    from diffusion_regimes.data.prepare import select_positions
    from diffusion_regimes.data.sources import fashion_training_split, pad_mnist

    images, labels, _ = fashion_training_split(folder)
    blocks, ys = [], []
    for position, label in enumerate(fashion_labels(names)):
        members = np.flatnonzero(labels == label)
        if per_class > members.size:
            raise ConfigError(f"speciation: {per_class} images per class requested, class "
                              f"{names[position]!r} has {members.size}")
        pick = members[select_positions(members.size, per_class, seed=seed, label=position)]
        blocks.append(pad_mnist(images[pick]))
        ys.append(np.full(per_class, position))
    pixels = torch.from_numpy(np.concatenate(blocks)).to(torch.float64) / 255.0
    return (pixels - pixels.mean()).to(torch.float32), torch.from_numpy(np.concatenate(ys)).to(torch.long)


# --------------------------------------------------------------------------- predictors vs measurement
PREDICTORS = {"t_s_lambda": "½ log Λ", "t_s_delta": "½ log λ_Δ", "t_s_gauss": "Gaussian classes"}
"""The three predictions of t_S compared with measurement: the paper's top eigenvalue, the variance along
the class-mean difference, and the Gaussian-class cloning curve's 0.775 crossing."""

TABLE_COLUMNS = ("source", "class_a", "class_b", "ratio_12", "sign_separation", "Lambda", "lambda_delta",
                 "t_s_lambda", "t_s_delta", "t_s_gauss", "t_s_gauss_low", "t_s_gauss_high", "n", "pairs",
                 "t_s_crossing", "t_s_crossing_low", "t_s_crossing_high", "t_s_fit", "t_s_fit_low",
                 "t_s_fit_high")
"""Columns of results/tables/speciation_predictors.csv (one row per predicted pair; measured columns
empty where the pair was not measured)."""

RMS_COLUMNS = ("predictor", "against", "pairs", "rms", "low", "high", "mean_error")


def spectral_columns(images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """½ log Λ and ½ log λ_Δ of a two-class set with λ₁/λ₂ and the top-component separation
    (:func:`spectrum.pair_statistics`)."""
    from diffusion_regimes.spectrum import pair_statistics

    stats = pair_statistics(images, labels)
    return {"ratio_12": stats.ratio, "sign_separation": stats.sign_separation, "Lambda": stats.lam,
            "lambda_delta": stats.lam_delta, "t_s_lambda": stats.t_s_lambda, "t_s_delta": stats.t_s_delta}


def predictor_table(predictions: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Predictions (spectral and Gaussian-class columns) joined with the measured rows on the pair."""
    keys = ["source", "class_a", "class_b"]
    merged = predictions.merge(measured.drop(columns=[c for c in ("memorised_fraction", "sweep_seconds",
                                                                  "phi_t_min") if c in measured]),
                               on=keys, how="left", validate="one_to_one")
    missing = [c for c in TABLE_COLUMNS if c not in merged]
    for column in missing:
        merged[column] = math.nan
    return merged[list(TABLE_COLUMNS)]


def rms_with_interval(errors: np.ndarray, *, n_boot: int, generator: torch.Generator,
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """RMS of ``errors`` (P,) with the percentile interval of the bootstrap over pairs."""
    e = torch.tensor(np.array(errors, dtype=np.float64))
    w = bootstrap_weights(e.numel(), n_boot=n_boot, generator=generator)
    boot = (w @ (e * e) / e.numel()).sqrt().numpy()
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float((e * e).mean().sqrt()), float(lo), float(hi)


def rms_table(table: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    """RMS error of each predictor against the measured crossing and fit, over the measured pairs."""
    rows = []
    for against in ("t_s_crossing", "t_s_fit"):
        for predictor in PREDICTORS:
            ok = table[[predictor, against]].dropna()
            if ok.empty:
                continue
            err = (ok[predictor] - ok[against]).to_numpy()
            gen = torch.Generator().manual_seed(derived_seed(seed, "speciation-rms", predictor, against))
            rms, lo, hi = rms_with_interval(err, n_boot=n_boot, generator=gen)
            rows.append({"predictor": predictor, "against": against, "pairs": len(ok), "rms": rms, "low": lo,
                         "high": hi, "mean_error": float(err.mean())})
    return pd.DataFrame(rows, columns=list(RMS_COLUMNS))
