"""Closed forms of the two-cluster Gaussian mixture (docs/science.md section 3).

Data: two equal-weight clusters ``N(+-m, sigma^2 I)`` in dimension ``d`` with ``|m|^2 = d mu~^2``.
Everything here is float64 and vectorised over ``t`` (numpy arrays or Python floats in, numpy out).

* :func:`cloning_probability` -- phi(t), the probability that two clones branched at time t end in the
  same class, as the 1-D integral of docs/science.md section 3 (:func:`cloning_probability_spike` takes |m|^2
  directly, :func:`cloning_probability_of_b` is the one-variable function behind both);
* :func:`t_speciation`, :func:`t_speciation_spectral` -- t_S = 1/2 log d and 1/2 log(d mu~^2);
* :func:`t_collapse`, :func:`excess_entropy_theory` -- t_C and the theory curve f(t);
* :func:`potential` -- V(q, t) of the closed Langevin equation of q = m.x / sqrt(d).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from diffusion_regimes.schedule import delta_t

__all__ = [
    "cloning_probability",
    "cloning_probability_of_b",
    "cloning_probability_spike",
    "delta",
    "excess_entropy_theory",
    "gamma",
    "log_cosh",
    "potential",
    "t_collapse",
    "t_collapse_of_alpha",
    "t_speciation",
    "t_speciation_spectral",
]

# Gauss-trapezoid settings of :func:`cloning_probability` (see there for the error argument).
_Z_RANGE = 12.0  # |z| <= 12 holds all but 4e-33 of the standard normal mass
_W_STEP = 0.25  # trapezoid step in the sigmoid's own variable w = a + b z
_B_SATURATED = 40.0  # phi(b) = 1 to 1e-21 beyond (see cloning_probability_of_b)


def delta(t: np.ndarray | float) -> np.ndarray:
    """``Delta_t = 1 - e^{-2t}`` (float64 array); the same function as :func:`schedule.delta_t`."""
    return delta_t(torch.as_tensor(np.asarray(t, dtype=np.float64))).numpy()


def gamma(t: np.ndarray | float, *, sigma: float = 1.0) -> np.ndarray:
    """``Gamma_t = Delta_t + sigma^2 e^{-2t}``: variance of each noised cluster (array score.gamma_t)."""
    t = np.asarray(t, dtype=np.float64)
    return delta(t) + sigma**2 * np.exp(-2.0 * t)


def cloning_probability(
    t: np.ndarray | float, *, d: int, mu_tilde: float = 1.0, sigma: float = 1.0
) -> np.ndarray:
    """phi(t) of docs/science.md section 3, for times ``t`` of any shape (float64 array of the same shape).

    ``phi = 1/2 int dy [G(y,u,v)^2 + G(y,-u,v)^2] / [G(y,u,v) + G(y,-u,v)]`` with ``u = |m| e^{-t}``,
    ``v = Gamma_t`` and ``|m|^2 = d mu~^2``; see :func:`cloning_probability_of_b` for its evaluation.
    """
    return cloning_probability_spike(t, norm_m2=d * mu_tilde**2, sigma=sigma)


def cloning_probability_spike(
    t: np.ndarray | float, *, norm_m2: np.ndarray | float, sigma: float = 1.0
) -> np.ndarray:
    """phi(t) for a mixture given by ``|m|^2`` directly (``t`` and ``norm_m2`` broadcast, float64 out).

    The mixture's top covariance eigenvalue is ``Lambda = |m|^2 + sigma^2``; curve fits of measured phi(t)
    use ``|m|^2 = Lambda - sigma^2`` as their free parameter (:mod:`estimators`), which need not be d mu~^2.
    """
    t_arr = np.asarray(t, dtype=np.float64)
    m2 = np.asarray(norm_m2, dtype=np.float64)
    if np.any(m2 < 0):
        raise ValueError("norm_m2 = |m|^2 must be >= 0")
    b = 2.0 * np.sqrt(m2) * np.exp(-t_arr) / np.sqrt(gamma(t_arr, sigma=sigma))
    return cloning_probability_of_b(b)


def cloning_probability_of_b(b: np.ndarray | float) -> np.ndarray:
    """phi as a function of ``b = 2 u / sqrt(v)`` alone: ``E_z[s(b^2/2 + b z)]``, ``z ~ N(0, 1)``.

    By the y -> -y symmetry the integral of :func:`cloning_probability` equals ``int dy G(y,u,v) s(2uy/v)``
    with s the logistic sigmoid (``G(y,-u,v)/G(y,u,v) = e^{-2uy/v}``), i.e. ``E_z[s(a + b z)]`` with
    ``a = b^2/2``: the probability that a second, independent backward trajectory from the same point ends
    in the cluster of the first (cluster = class as the clusters do not overlap, d >= 64).  It rises from
    1/2 (b = 0) to 1; ``b^2 = 4 |m|^2 e^{-2t} / Gamma_t`` is the only way the mixture enters.

    Quadrature: trapezoid in z on [-12, 12] with step ``min(1, 1/b) * 0.25``.  The integrand is analytic
    in the strip |Im w| < pi of w = a + b z (poles of the sigmoid at w = i pi) and the Gaussian is entire,
    so the trapezoid error is ~exp(-2 pi^2 / 0.25) < 1e-30 plus the truncated mass 4e-33: far below the
    1e-6 asked for, at a grid of ~100 max(b, 1) points shared by all entries.  For ``b > 40`` phi is set to
    1: ``1 - phi <= P(z < -b/4) + s(-b^2/4) < 1e-21``, below the ~1e-13 rounding of the quadrature sum
    itself, so those entries skip the (long) grid.
    """
    b_arr = np.abs(np.asarray(b, dtype=np.float64))
    flat = b_arr.reshape(-1)
    out = np.ones_like(flat)
    inner = np.nonzero(flat <= _B_SATURATED)[0]
    if inner.size == 0:
        return out.reshape(b_arr.shape)
    bi = flat[inner]
    a = 0.5 * bi**2
    n_points = int(math.ceil(2 * _Z_RANGE * max(1.0, float(bi.max())) / _W_STEP)) + 1
    z = np.linspace(-_Z_RANGE, _Z_RANGE, n_points)
    weight = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi) * (z[1] - z[0])
    weight[0] *= 0.5
    weight[-1] *= 0.5
    values = np.empty_like(bi)
    # chunk so the (entries, grid) matrix stays below ~64 MB
    step = max(1, 8_000_000 // n_points)
    for start in range(0, bi.size, step):
        w = a[start:start + step, None] + bi[start:start + step, None] * z[None, :]
        sig = 0.5 * (1.0 + np.tanh(0.5 * w))  # logistic sigmoid without overflow
        values[start:start + step] = sig @ weight
    out[inner] = values
    return out.reshape(b_arr.shape)


def t_speciation(d: int | np.ndarray) -> np.ndarray:
    """``t_S = 1/2 log d`` (mu~ = 1; docs/science.md section 3)."""
    return 0.5 * np.log(np.asarray(d, dtype=np.float64))


def t_speciation_spectral(d: int | np.ndarray, *, mu_tilde: float = 1.0) -> np.ndarray:
    """``t_S = 1/2 log(d mu~^2)``: the speciation criterion Lambda e^{-2t} = 1 with Lambda ~ |m|^2 = d mu~^2.

    (The exact top covariance eigenvalue is d mu~^2 + sigma^2; the paper's large-d statement drops sigma^2.)
    """
    return 0.5 * np.log(np.asarray(d, dtype=np.float64) * mu_tilde**2)


def t_collapse(n: int | np.ndarray, d: int | np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """``t_C = 1/2 log(1 + sigma^2 / (n^{2/d} - 1))`` (docs/science.md section 3).

    ``n^{2/d} - 1`` is evaluated as ``expm1(2 log(n) / d)``: for large d it is ~2 log(n)/d and the naive
    power loses all digits (log n / d ~ 1e-4 at paper sizes).
    """
    n = np.asarray(n, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    return t_collapse_of_alpha(np.log(n) / d, sigma=sigma)


def t_collapse_of_alpha(alpha: float | np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """``t_C = 1/2 log(1 + sigma^2 / (e^{2 alpha} - 1))``: t_C depends on (n, d) only through
    alpha = log(n)/d."""
    return 0.5 * np.log1p(sigma**2 / np.expm1(2.0 * np.asarray(alpha, dtype=np.float64)))


def excess_entropy_theory(
    t: np.ndarray | float, *, n: int, d: int, sigma: float = 1.0
) -> np.ndarray:
    """``f(t) = max(0, alpha + 1/2 log(Delta_t / (Delta_t + sigma^2 e^{-2t})))``, ``alpha = log(n)/d``."""
    t = np.asarray(t, dtype=np.float64)
    alpha = math.log(n) / d
    dlt = delta(t)
    # log(Delta/(Delta + s^2 e^{-2t})) = -log1p(s^2 e^{-2t} / Delta): accurate at large t where the ratio -> 1
    with np.errstate(divide="ignore"):
        value = alpha - 0.5 * np.log1p(sigma**2 * np.exp(-2.0 * t) / dlt)
    return np.maximum(0.0, value)


def log_cosh(x: np.ndarray | float) -> np.ndarray:
    """``log cosh x = |x| + log1p(e^{-2|x|}) - log 2``: never overflows (cosh does beyond |x| ~ 710)."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    return ax + np.log1p(np.exp(-2.0 * ax)) - math.log(2.0)


def potential(q: np.ndarray | float, t: np.ndarray | float, *, d: int, mu_tilde: float = 1.0) -> np.ndarray:
    """``V(q, t) = 1/2 q^2 - 2 mu~^2 log cosh(q e^{-t} sqrt(d))`` (docs/science.md section 3), broadcast
    over q, t.

    The quadratic term confines, the log cosh term pulls towards the clusters: the curvature at q = 0 is
    ``1 - 2 mu~^2 d e^{-2t}``, so the double well opens at ``1/2 log(2 d mu~^2) = t_S + 1/2 log 2``, i.e. at
    the speciation time up to an O(1) shift that is negligible against log d.
    """
    q = np.asarray(q, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    return 0.5 * q**2 - 2.0 * mu_tilde**2 * log_cosh(q * np.exp(-t) * math.sqrt(d))
