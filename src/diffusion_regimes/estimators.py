"""Curve fits of phi(t) and phi_C(t) that use every branch time at once (docs/science.md section 5).

The 0.775 crossing of :func:`measures.crossing_time` uses the two branch times around the crossing; the
fits here use all of them, with a binomial likelihood per branch time:

* :func:`fit_speciation_theory` -- one parameter, the two-cluster Gaussian-mixture phi curve
  (docs/science.md section 3) with sigma = 1 and ``|m|^2 = Lambda_eff - 1``; ``t_S,fit = 1/2 log Lambda_eff``;
* :func:`fit_speciation_logistic` -- two parameters, ``phi = 1/2 + 1/2 s(-(t - t_mid)/w)``, a shape check;
* :func:`fit_collapse_logistic` -- two parameters, ``phi_C = s(-(t - t_c)/w)``, t_C where it crosses 1/2.

Intervals come from the pair bootstrap: the N pair columns are resampled jointly across all branch times
(pair j of every branch time shares a trunk in the shared-trunk sweep, so the rows are correlated through
the columns), every replicate is refitted, and the percentile interval is reported.  All replicates are
fitted together: the counts of replicate r are one column of ``agree @ weights.T`` and every likelihood
evaluation is a matrix product or an elementwise operation over (replicates, branch times).

A fit "fails" when its optimum sits on the edge of the parameter domain or when the fitted time lies
outside the range of the branch times (the data do not cover it).  A failed point fit gives ``nan``; when
more than 10 % of the replicates fail the interval ends are ``nan``: never a number the data do not support.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import gammaln

from diffusion_regimes import theory
from diffusion_regimes.errors import ConfigError, DataError
from diffusion_regimes.measures import bootstrap_weights

__all__ = [
    "CurveFit",
    "OnsetFit",
    "PowerLawFit",
    "fit_onset",
    "fit_power_law",
    "onset_curve",
    "fit_collapse_logistic",
    "fit_speciation_logistic",
    "fit_speciation_theory",
    "phi_theory_curve",
]

# Probabilities are clipped to [_CLIP, 1 - _CLIP] in every likelihood: a branch time where all N pairs
# agree then costs at most N * 1e-9 in log-likelihood instead of -inf for a curve that is 1 - 1e-12 there.
_CLIP = 1e-9
# More failed replicates than this fraction and the interval is not reported (nan ends).
_MAX_FAILED_FRACTION = 0.10

# Theory family: grid in log Lambda_eff on (0, log 1e6].  The lower end 1e-3 (Lambda_eff = 1.001, a
# spike 1000 times weaker than the noise, t_S = 5e-4) stands for the open end Lambda_eff -> 1.  600 points
# (step 0.023 in log Lambda, 0.012 in t_S) bracket the maximum of the log-likelihood, which is unimodal
# in practice; golden section then locates it to 1e-9 in log Lambda.
_LOG_LAMBDA_MIN = 1e-3
_LOG_LAMBDA_MAX = math.log(1e6)
_N_LAMBDA_GRID = 600
_GOLDEN_ITERATIONS = 45

# Table of phi(b) (theory.cloning_probability_of_b) on a geometric grid of b, interpolated linearly in
# log b.  6001 points on [1e-4, 16]: step h = 0.002 in log b, so the interpolation error is
# <= h^2/8 max|phi''| ~ 1e-6 in phi, below the 1/sqrt(N) ~ 1e-2 statistical error by four orders.  Below
# b = 1e-4 phi - 1/2 = b^2/8 < 2e-9 (clamped); above b = 16, 1 - phi < 1e-13 is far below the 1e-9
# clip of the likelihoods, so phi is taken as 1 there.
_B_MIN = 1e-4
_B_MAX = 16.0
_N_B_TABLE = 6001
_N_B_BLOCKS = 16  # the quadrature grid grows with max b: small b in their own blocks keep it short

# Logistic fits: coarse grid (centres over the branch-time range widened by half a span on each side,
# widths from span/200 to 2 span, geometric) then Fisher scoring with a step search.  A width below
# _WIDTH_MIN_FRACTION span means the transition falls between two branch times (the data cannot place it);
# above _WIDTH_MAX_FRACTION span the curve is flat over the data (no transition seen): both are failures.
_N_CENTRE_GRID = 41
_N_WIDTH_GRID = 21
_WIDTH_MIN_FRACTION = 1e-3
_WIDTH_MAX_FRACTION = 10.0
_SCORING_ITERATIONS = 60
_STEP_SIZES = 0.5 ** np.arange(11)  # 1, 1/2, ..., 1/1024: the first that raises the likelihood
_SCORING_TOLERANCE = 1e-7  # scaled-parameter step below which a replicate has converged
_GRID_CELLS = 4_000_000  # grid points x columns per likelihood matrix (32 MB of float64)


@dataclass(frozen=True)
class CurveFit:
    """One curve fit and its pair-bootstrap percentile interval.

    ``params`` holds the family's parameters (``lambda_eff`` or ``t_mid``/``t_c`` and ``width``), their
    interval ends (``*_low``, ``*_high``), ``se`` (bootstrap standard deviation of ``time``),
    ``boot_failed`` (replicates dropped) and ``point_failed`` (1.0 when the fit on the data itself failed).
    """

    method: str  # "gm_theory" | "logistic"
    time: float  # the fitted t_S (or t_C)
    low: float  # interval of `time` (pair-bootstrap percentile)
    high: float
    confidence: float
    params: dict[str, float]
    log_likelihood: float  # binomial log-likelihood at the optimum (with the log binomial coefficients)
    n_boot: int  # replicates used (failed fits dropped and counted in params["boot_failed"])


# ------------------------------------------------------------------------------------------ shared
def _validate(times: np.ndarray, agree: np.ndarray | torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """``times`` (B,) float64 and ``agree`` (B, N) float64 tensor of 0/1, else a DataError saying why."""
    t = np.asarray(times, dtype=np.float64)
    a = torch.as_tensor(agree).to(torch.float64)
    if t.ndim != 1 or a.ndim != 2 or a.shape[0] != t.shape[0]:
        raise DataError(f"curve fit: times must be (B,) and agree (B, N) with the same B; got times "
                        f"{tuple(t.shape)} and agree {tuple(a.shape)} (one row per branch time)")
    if t.shape[0] < 2 or a.shape[1] < 1:
        raise DataError(f"curve fit: need >= 2 branch times and >= 1 pair, got agree {tuple(a.shape)}")
    if not np.all(np.isfinite(t)):
        raise DataError("curve fit: branch times must be finite")
    if not bool(torch.all((a == 0) | (a == 1))):
        raise DataError("curve fit: agree must hold 0/1 (same class / same nearest training point) per pair")
    return t, a


def _counts(agree: torch.Tensor, *, n_boot: int, generator: torch.Generator) -> np.ndarray:
    """Agreeing pairs per branch time, ``(B, 1 + n_boot)``: column 0 the data, then the pair bootstrap.

    One weight row per replicate, shared by all branch times (the columns are resampled jointly).
    """
    if n_boot < 1:
        raise ConfigError(f"curve fit: n_boot must be >= 1, got {n_boot}")
    weights = bootstrap_weights(agree.shape[1], n_boot=n_boot, generator=generator)  # (R, N)
    boot = agree @ weights.T  # (B, R)
    return torch.cat([agree.sum(dim=1, keepdim=True), boot], dim=1).numpy()


def _log_binomial_coefficients(counts: np.ndarray, n: int) -> np.ndarray:
    """``sum_b log C(n, k_b)`` per column of ``counts`` (B, R) -> (R,); bootstrap counts are integers."""
    k = np.rint(counts)
    return np.sum(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1), axis=0)


def _log_likelihood_rows(p: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Binomial log-likelihood without coefficients: curves ``p`` (G, B) x counts (B, C) -> (G, C)."""
    pc = np.clip(p, _CLIP, 1.0 - _CLIP)
    log_q = np.log1p(-pc)
    # k log p + (n - k) log(1 - p) = k logit(p) + n log(1 - p): one matrix product instead of two
    return (np.log(pc) - log_q) @ counts + n * log_q.sum(axis=1, keepdims=True)


def _grid_argmax(p: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Index of the best of the curves ``p`` (G, B) for every column of ``counts`` (B, C) -> (C,).

    Columns go in chunks so the (G, chunk) likelihood matrix stays below ~32 MB whatever C is.
    """
    chunk = max(1, _GRID_CELLS // p.shape[0])
    return np.concatenate([np.argmax(_log_likelihood_rows(p, counts[:, i:i + chunk], n), axis=0)
                           for i in range(0, counts.shape[1], chunk)])


def _log_likelihood_paired(p: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Same, one curve per column: ``p`` (C, B) with ``counts`` (B, C) -> (C,)."""
    pc = np.clip(p, _CLIP, 1.0 - _CLIP)
    return np.sum(counts.T * np.log(pc) + (n - counts.T) * np.log1p(-pc), axis=1)


def _percentile_interval(
    values: np.ndarray, ok: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the replicates ``values[..., ok]`` (..., R) -> two (...) arrays.

    nan ends where more than 10 % of the replicates failed.
    """
    kept = np.where(ok, values, np.nan)
    enough = ok.mean(axis=-1) >= 1.0 - _MAX_FAILED_FRACTION
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan slices give nan, which is what we want
        lo, hi = np.nanquantile(kept, [0.5 * (1.0 - confidence), 0.5 * (1.0 + confidence)], axis=-1)
    return np.where(enough, lo, np.nan), np.where(enough, hi, np.nan)


def _std(values: np.ndarray, ok: np.ndarray) -> float:
    """Bootstrap standard deviation of the replicates that did not fail (nan with fewer than two)."""
    return float(np.std(values[ok], ddof=1)) if np.count_nonzero(ok) > 1 else float("nan")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"curve fit: confidence must lie in (0, 1), got {confidence}")


# ------------------------------------------------------------------------------- theory family
@functools.lru_cache(maxsize=1)
def _phi_table() -> tuple[np.ndarray, np.ndarray]:
    """``(log b, phi(b))`` on the interpolation grid (computed once per process, ~0.1 s)."""
    log_b = np.linspace(math.log(_B_MIN), math.log(_B_MAX), _N_B_TABLE)
    phi = np.concatenate([theory.cloning_probability_of_b(np.exp(block))
                          for block in np.array_split(log_b, _N_B_BLOCKS)])
    return log_b, phi


def _phi_from_log_lambda(log_lambda: np.ndarray, times: np.ndarray) -> np.ndarray:
    """phi(t; Lambda_eff) from the table, broadcast over ``log_lambda`` and ``times`` (float64).

    With sigma = 1, Gamma_t = 1 and ``b = 2 |m| e^{-t} = 2 sqrt(Lambda_eff - 1) e^{-t}``.
    """
    log_b_table, phi_table = _phi_table()
    log_b = math.log(2.0) + 0.5 * np.log(np.expm1(log_lambda)) - times
    # linear interpolation on the uniform grid by direct indexing (np.interp bisects: ~5x slower)
    step = log_b_table[1] - log_b_table[0]
    x = np.clip((log_b - log_b_table[0]) / step, 0.0, log_b_table.size - 1.0)
    i = np.minimum(x.astype(np.intp), log_b_table.size - 2)
    frac = x - i
    phi = phi_table[i] + frac * (phi_table[i + 1] - phi_table[i])
    return np.where(log_b > log_b_table[-1], 1.0, phi)


def phi_theory_curve(times: np.ndarray, lambda_eff: float) -> np.ndarray:
    """The fitted theory curve phi(t; Lambda_eff) at ``times`` (any shape; exact quadrature, float64)."""
    if not lambda_eff > 1.0:
        raise ValueError(f"lambda_eff must be > 1 (sigma^2 = 1 plus the spike |m|^2), got {lambda_eff}")
    return theory.cloning_probability_spike(times, norm_m2=lambda_eff - 1.0, sigma=1.0)


def _theory_columns(t: np.ndarray, counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ML t_S = 1/2 log Lambda_eff for every column of ``counts`` (B, C): ``(t_fit, ok, log_likelihood)``.

    ``ok`` is False where the grid maximum sits on the domain edge (the optimum is Lambda_eff -> 1 or
    beyond 1e6: flat data) or where t_fit lies outside the branch times.  Log-likelihood without the
    binomial coefficients.
    """
    grid = np.linspace(_LOG_LAMBDA_MIN, _LOG_LAMBDA_MAX, _N_LAMBDA_GRID)
    best = _grid_argmax(_phi_from_log_lambda(grid[:, None], t[None, :]), counts, n)
    interior = (best > 0) & (best < grid.size - 1)

    def log_likelihood(log_lambda: np.ndarray) -> np.ndarray:
        return _log_likelihood_paired(_phi_from_log_lambda(log_lambda[:, None], t[None, :]), counts, n)

    lo = grid[np.clip(best - 1, 0, grid.size - 1)]
    hi = grid[np.clip(best + 1, 0, grid.size - 1)]
    log_lambda = _golden_section(log_likelihood, lo, hi)
    t_fit = 0.5 * log_lambda
    ok = interior & (t_fit >= t.min()) & (t_fit <= t.max())
    return t_fit, ok, log_likelihood(log_lambda)


def fit_speciation_theory(
    times: np.ndarray,
    agree: np.ndarray | torch.Tensor,
    *,
    n_boot: int,
    generator: torch.Generator,
    confidence: float = 0.95,
) -> CurveFit:
    """Maximum-likelihood Lambda_eff of the Gaussian-mixture phi curve over all branch times.

    ``times`` (B,) branch times in any order, ``agree`` (B, N) 0/1 same-class indicator of pair j at branch
    time b.  The likelihood is binomial per branch time, ``sum_b k_b log phi_b + (N - k_b) log(1 - phi_b)``
    with ``phi_b = phi(t_b; Lambda_eff)`` (docs/science.md section 3 with sigma = 1,
    ``|m|^2 = Lambda_eff - 1``), maximised over log Lambda_eff in (0, log 1e6] by a grid and golden
    section.  ``time`` is ``1/2 log Lambda_eff``; the interval is the pair-bootstrap percentile interval.
    """
    _check_confidence(confidence)
    t, a = _validate(times, agree)
    n = a.shape[1]
    counts = _counts(a, n_boot=n_boot, generator=generator)  # (B, 1 + R)
    t_fit, ok, ll = _theory_columns(t, counts, n)
    ll0 = float(ll[0] + _log_binomial_coefficients(counts[:, :1], n)[0])
    low, high = (float(x) for x in _percentile_interval(t_fit[1:], ok[1:], confidence))
    point_ok = bool(ok[0])
    time = float(t_fit[0]) if point_ok else float("nan")
    if not point_ok:
        low = high = float("nan")
    params = {
        "lambda_eff": math.exp(2.0 * time),
        "lambda_eff_low": math.exp(2.0 * low), "lambda_eff_high": math.exp(2.0 * high),
        "se": _std(t_fit[1:], ok[1:]),
        "boot_failed": float(np.count_nonzero(~ok[1:])),
        "point_failed": 0.0 if point_ok else 1.0,
    }
    return CurveFit("gm_theory", time, low, high, confidence, params, ll0, int(np.count_nonzero(ok[1:])))


def _golden_section(
    objective: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Maximise ``objective`` (R,) -> (R,) on the brackets [lo, hi] (R,), one replicate per entry."""
    ratio = 0.5 * (math.sqrt(5.0) - 1.0)
    a, b = lo.copy(), hi.copy()
    c = b - ratio * (b - a)
    d = a + ratio * (b - a)
    fc, fd = objective(c), objective(d)
    for _ in range(_GOLDEN_ITERATIONS):
        left = fc >= fd  # the maximum lies in [a, d]
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        c_new = np.where(left, b - ratio * (b - a), d)
        d_new = np.where(left, c, a + ratio * (b - a))
        # one new evaluation per replicate: at the new c (left) or at the new d (right)
        fp = objective(np.where(left, c_new, d_new))
        fc, fd = np.where(left, fp, fd), np.where(left, fc, fp)
        c, d = c_new, d_new
    return 0.5 * (a + b)


# ------------------------------------------------------------------------------- logistic family
@dataclass(frozen=True)
class _LogisticSolution:
    """Per column of the counts (data first, then replicates), all (1 + R,)."""

    centre: np.ndarray  # t where s(eta) = 1/2
    width: np.ndarray  # w > 0 of s(-(t - centre)/w)
    log_likelihood: np.ndarray  # without binomial coefficients
    ok: np.ndarray  # bool: converged, interior width, decreasing


def _logistic_curve(eta: np.ndarray, floor: float) -> np.ndarray:
    """``floor + (1 - floor) s(eta)`` with s the logistic sigmoid (no overflow: tanh form)."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + np.tanh(0.5 * eta))


def _fit_logistic(t: np.ndarray, counts: np.ndarray, n: int, *, floor: float) -> _LogisticSolution:
    """Binomial ML fit of ``floor + (1 - floor) s(-(t - centre)/w)`` to every column of ``counts`` (B, C).

    Parametrised as ``eta = alpha + beta tau`` with ``tau = (t - mean t)/span`` (so that the 2x2 Fisher
    matrix is well conditioned), started from the best point of a coarse (centre, width) grid and refined
    by Fisher scoring with step halving that never lowers the likelihood; vectorised over columns.
    For ``floor = 0`` this is ordinary logistic regression (concave, so scoring reaches the optimum).
    """
    span = float(t.max() - t.min())
    if not span > 0:
        raise DataError("curve fit: the branch times must not all be equal")
    t_mean = float(t.mean())
    tau = (t - t_mean) / span  # (B,)
    centres = np.linspace(t.min() - 0.5 * span, t.max() + 0.5 * span, _N_CENTRE_GRID)
    widths = np.geomspace(span / 200.0, 2.0 * span, _N_WIDTH_GRID)
    c_grid, w_grid = (g.reshape(-1) for g in np.meshgrid(centres, widths, indexing="ij"))
    best = _grid_argmax(_logistic_curve(-(t[None, :] - c_grid[:, None]) / w_grid[:, None], floor), counts, n)
    alpha = (c_grid[best] - t_mean) / w_grid[best]
    beta = -span / w_grid[best]
    k = counts.T  # (C, B)

    def log_likelihood(al: np.ndarray, be: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Parameters (c,) of the columns ``cols`` (c,) -> their log-likelihood (c,)."""
        pc = np.clip(_logistic_curve(al[:, None] + be[:, None] * tau, floor), _CLIP, 1.0 - _CLIP)
        return np.sum(k[cols] * np.log(pc) + (n - k[cols]) * np.log1p(-pc), axis=1)

    every = np.arange(alpha.size)
    current = log_likelihood(alpha, beta, every)
    done = np.zeros(alpha.size, dtype=bool)
    for _ in range(_SCORING_ITERATIONS):
        cols = np.nonzero(~done)[0]
        if cols.size == 0:
            break
        al, be = alpha[cols], beta[cols]
        s = 0.5 * (1.0 + np.tanh(0.5 * (al[:, None] + be[:, None] * tau)))  # (c, B)
        p = floor + (1.0 - floor) * s
        # d log L / d eta_b = (k_b - n p_b) dp/deta / (p (1 - p)) and dp/deta / (p (1 - p)) = s / p,
        # written without dividing by (1 - s), which underflows where the curve saturates at 1
        ratio = np.divide(s, p, out=np.ones_like(s), where=p > 0)
        score = (k[cols] - n * p) * ratio
        info = n * (1.0 - floor) * s * (1.0 - s) * ratio
        g0, g1 = score.sum(axis=1), (score * tau).sum(axis=1)
        i00, i01, i11 = info.sum(axis=1), (info * tau).sum(axis=1), (info * tau**2).sum(axis=1)
        det = i00 * i11 - i01**2
        safe = det > 1e-12 * np.maximum(i00 * i11, 1e-300)
        d_alpha = np.where(safe, (i11 * g0 - i01 * g1) / np.where(safe, det, 1.0), 0.0)
        d_beta = np.where(safe, (i00 * g1 - i01 * g0) / np.where(safe, det, 1.0), 0.0)
        # step halving, each halving only on the columns whose likelihood has not risen yet
        step = np.zeros(cols.size)
        pending = np.arange(cols.size)
        for h in _STEP_SIZES:
            trial = log_likelihood(al[pending] + h * d_alpha[pending], be[pending] + h * d_beta[pending],
                                   cols[pending])
            up = trial > current[cols[pending]]
            step[pending[up]] = h
            current[cols[pending[up]]] = trial[up]
            pending = pending[~up]
            if pending.size == 0:
                break
        alpha[cols] = al + step * d_alpha
        beta[cols] = be + step * d_beta
        # converged: the scoring step is negligible, or no step along it raises the likelihood
        small = np.hypot(d_alpha, d_beta) < _SCORING_TOLERANCE * (1.0 + np.hypot(al, be))
        done[cols] = small | (step == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = -span / beta
        centre = t_mean - span * alpha / beta
    ok = done & np.isfinite(centre) & (beta < 0)
    ok &= (width >= _WIDTH_MIN_FRACTION * span) & (width <= _WIDTH_MAX_FRACTION * span)
    return _LogisticSolution(centre, width, current, ok)


def _level_time(
    sol: _LogisticSolution, t: np.ndarray, *, floor: float, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Time where each fitted curve equals ``level`` and the ok mask (failed also if outside the times)."""
    # floor + (1 - floor) s(eta) = level where s(eta) = q, i.e. eta = logit q = -(t - centre)/w
    q = (level - floor) / (1.0 - floor)
    with np.errstate(invalid="ignore"):
        t_level = sol.centre - sol.width * math.log(q / (1.0 - q))
    return t_level, sol.ok & (t_level >= t.min()) & (t_level <= t.max())


def _logistic_result(
    t: np.ndarray,
    a: torch.Tensor,
    *,
    floor: float,
    level: float,
    centre_name: str,
    n_boot: int,
    generator: torch.Generator,
    confidence: float,
) -> CurveFit:
    """Fit, bootstrap and assemble a :class:`CurveFit` of a logistic family (see the public functions)."""
    _check_confidence(confidence)
    if not floor < level < 1.0:
        raise ConfigError(f"curve fit: level must lie in ({floor}, 1) for this curve, got {level}")
    n = a.shape[1]
    counts = _counts(a, n_boot=n_boot, generator=generator)
    sol = _fit_logistic(t, counts, n, floor=floor)
    t_level, ok = _level_time(sol, t, floor=floor, level=level)
    low, high = (float(x) for x in _percentile_interval(t_level[1:], ok[1:], confidence))
    c_low, c_high = (float(x) for x in _percentile_interval(sol.centre[1:], ok[1:], confidence))
    w_low, w_high = (float(x) for x in _percentile_interval(sol.width[1:], ok[1:], confidence))
    point_ok = bool(ok[0])
    nan = float("nan")
    if not point_ok:
        low = high = nan
    params = {
        centre_name: float(sol.centre[0]) if point_ok else nan,
        f"{centre_name}_low": c_low, f"{centre_name}_high": c_high,
        "width": float(sol.width[0]) if point_ok else nan, "width_low": w_low, "width_high": w_high,
        "se": _std(t_level[1:], ok[1:]),
        "boot_failed": float(np.count_nonzero(~ok[1:])),
        "point_failed": 0.0 if point_ok else 1.0,
    }
    ll0 = float(sol.log_likelihood[0] + _log_binomial_coefficients(counts[:, :1], n)[0])
    return CurveFit("logistic", float(t_level[0]) if point_ok else nan, low, high, confidence, params, ll0,
                    int(np.count_nonzero(ok[1:])))


def fit_speciation_logistic(
    times: np.ndarray,
    agree: np.ndarray | torch.Tensor,
    *,
    n_boot: int,
    generator: torch.Generator,
    confidence: float = 0.95,
    level: float = 0.775,
) -> CurveFit:
    """Two-parameter shape check of phi(t): ``phi = 1/2 + 1/2 s(-(t - t_mid)/w)``, w > 0, binomial ML.

    ``times`` (B,), ``agree`` (B, N) as in :func:`fit_speciation_theory`; ``time`` is where the fitted
    curve equals ``level`` (``t_mid - w logit(2 level - 1)``), with its pair-bootstrap percentile interval.
    """
    t, a = _validate(times, agree)
    return _logistic_result(t, a, floor=0.5, level=level, centre_name="t_mid", n_boot=n_boot,
                            generator=generator, confidence=confidence)


def fit_collapse_logistic(
    times: np.ndarray,
    agree: np.ndarray | torch.Tensor,
    *,
    n_boot: int,
    generator: torch.Generator,
    confidence: float = 0.95,
    level: float = 0.5,
) -> CurveFit:
    """Monotone fit of phi_C(t) from 1 to 0: ``phi_C = s(-(t - t_c)/w)``, w > 0, binomial ML.

    ``agree`` (B, N) is 1 where the two clones of pair j branched at ``times[b]`` end nearest to the same
    training point (docs/science.md section 5).  ``time`` is where the fitted curve equals ``level`` (t_c for
    the default 1/2), with its pair-bootstrap percentile interval.
    """
    t, a = _validate(times, agree)
    return _logistic_result(t, a, floor=0.0, level=level, centre_name="t_c", n_boot=n_boot,
                            generator=generator, confidence=confidence)


def logistic_curve(times: np.ndarray, *, centre: float, width: float, floor: float = 0.0) -> np.ndarray:
    """A fitted logistic family at ``times``: ``floor + (1 - floor) s(-(t - centre)/width)``.

    ``floor = 0`` is the phi_C family of :func:`fit_collapse_logistic` (``centre = t_c``), ``floor = 1/2``
    the phi family of :func:`fit_speciation_logistic` (``centre = t_mid``); nan parameters give nan.
    """
    eta = -(np.asarray(times, dtype=np.float64) - centre) / width
    return floor + (1.0 - floor) * 0.5 * (1.0 + np.tanh(0.5 * eta))


# ------------------------------------------------------------------------- training-time onsets
@dataclass(frozen=True)
class OnsetFit:
    """Onset of a fraction that rises with training time: where ``p(s)`` reaches ``level``.

    ``p(s) = s((log s - log tau_half) / w)`` (logistic in log optimiser steps, from 0 to 1), fitted by
    binomial maximum likelihood to the counts at the checkpoints; ``time`` is the step where the fitted
    curve equals ``level``; ``low``/``high`` its parametric-bootstrap percentile interval (an end beyond
    the checkpoints the data cannot bound: ``0`` or ``inf``).  ``censored``: ``"none"``; ``"right"`` when
    no checkpoint reaches ``level`` (the onset lies beyond the last step: ``low`` = last step, ``time``
    and ``high`` = inf); ``"left"`` when every checkpoint is already at or above it (``high`` = first
    step, ``time`` and ``low`` = 0); ``"interval"`` when the curve jumps between two checkpoints too
    steeply for a width to be fitted (``low``/``high`` = those checkpoints, ``time`` their geometric mean).
    """

    time: float
    low: float
    high: float
    confidence: float
    level: float
    width: float  # w of the logistic in log steps (nan unless censored == "none")
    censored: str
    log_likelihood: float
    n_boot: int  # replicates that converged


def _onset_result(t: np.ndarray, counts: np.ndarray, n: int) -> _LogisticSolution:
    """:func:`_fit_logistic` on ``t = -log(steps)``: the decreasing family in t is increasing in steps."""
    return _fit_logistic(t, counts, n, floor=0.0)


def fit_onset(
    steps: np.ndarray,
    counts: np.ndarray,
    samples: int,
    *,
    level: float = 0.5,
    n_boot: int = 400,
    generator: torch.Generator,
    confidence: float = 0.95,
) -> OnsetFit:
    """Fitted onset of a binomial fraction along training: ``counts[j]`` of ``samples`` at ``steps[j]``.

    Used for the memorisation time tau_mem (memorised samples) and the generalisation time tau_gen
    (confidently classified samples) of docs/science.md (training time).  A fit uses every checkpoint, so
    the onset does not hinge on the first noisy crossing.  The interval is a parametric bootstrap: counts
    redrawn from the fitted curve (binomial, ``samples`` per checkpoint), refitted, percentile interval of
    the onset.  See :class:`OnsetFit` for the censored cases.
    """
    _check_confidence(confidence)
    if not 0.0 < level < 1.0:
        raise ConfigError(f"onset fit: level must lie in (0, 1), got {level}")
    s = np.asarray(steps, dtype=np.float64)
    k = np.asarray(counts, dtype=np.float64)
    if s.ndim != 1 or k.shape != s.shape or s.size < 2:
        raise DataError(f"onset fit: need >= 2 checkpoints with one count each, got steps {s.shape} and "
                        f"counts {k.shape}")
    if not np.all(s > 0) or np.unique(s).size != s.size:
        raise DataError("onset fit: checkpoint steps must be distinct and positive")
    if samples < 1 or np.any(k < 0) or np.any(k > samples) or np.any(k != np.rint(k)):
        raise DataError(f"onset fit: counts must be integers in [0, {samples}]")
    order = np.argsort(s)
    s, k = s[order], k[order]
    frac = k / samples
    nan, inf = math.nan, math.inf
    if np.all(frac < level):
        return OnsetFit(inf, float(s[-1]), inf, confidence, level, nan, "right", nan, 0)
    if np.all(frac >= level):
        return OnsetFit(0.0, 0.0, float(s[0]), confidence, level, nan, "left", nan, 0)
    t = -np.log(s)
    sol = _onset_result(t, k[:, None], samples)
    logit = math.log(level / (1.0 - level))
    # A curve that rises within a tenth of the closest checkpoint spacing (in log steps) is a step the
    # checkpoints cannot resolve (with complete separation the likelihood has no maximum at all).
    resolvable = bool(sol.ok[0]) and float(sol.width[0]) >= 0.1 * float(np.min(np.diff(np.log(s))))
    if not resolvable:
        # a step between two checkpoints: bracket the last upward crossing of the level
        j = int(np.nonzero((frac[:-1] < level) & (frac[1:] >= level))[0][-1])
        return OnsetFit(float(math.sqrt(s[j] * s[j + 1])), float(s[j]), float(s[j + 1]), confidence, level,
                        nan, "interval", nan, 0)
    centre, width = float(sol.centre[0]), float(sol.width[0])
    # p = s(-(t - centre)/w) = level at t = centre - w logit(level); the step is exp(-t)
    time = math.exp(-(centre - width * logit))
    p_hat = _logistic_curve(-(t - centre) / width, 0.0)
    boot = torch.binomial(torch.full((n_boot, s.size), float(samples), dtype=torch.float64),
                          torch.as_tensor(p_hat, dtype=torch.float64).expand(n_boot, -1).contiguous(),
                          generator=generator).numpy()
    reps = _onset_result(t, boot.T, samples)
    with np.errstate(over="ignore", invalid="ignore"):
        rep_times = np.exp(-(reps.centre - reps.width * logit))
    ok = reps.ok & np.isfinite(rep_times)
    low, high = (float(x) for x in _percentile_interval(rep_times, ok, confidence))
    # ends the checkpoints cannot bound are reported as unbounded, never extrapolated
    if low < s[0]:
        low = 0.0
    if high > s[-1]:
        high = inf
    ll = float(sol.log_likelihood[0] + _log_binomial_coefficients(k[:, None], samples)[0])
    return OnsetFit(time, low, high, confidence, level, width, "none", ll, int(np.count_nonzero(ok)))


def onset_curve(steps: np.ndarray, fit: OnsetFit) -> np.ndarray:
    """The fitted fraction of :func:`fit_onset` at ``steps`` (nan when the fit is censored)."""
    s = np.asarray(steps, dtype=np.float64)
    if fit.censored != "none":
        return np.full(s.shape, np.nan)
    logit = math.log(fit.level / (1.0 - fit.level))
    return 1.0 / (1.0 + np.exp(-(np.log(s / fit.time) / fit.width + logit)))


@dataclass(frozen=True)
class PowerLawFit:
    """``tau = c n^gamma`` fitted in log-log (weighted least squares); ``gamma_low``/``gamma_high`` its
    interval; ``points``: the (n, tau) pairs with a bounded interval that entered the fit."""

    gamma: float
    gamma_low: float
    gamma_high: float
    gamma_se: float
    prefactor: float  # c
    chi2: float  # weighted residual sum of squares
    dof: int
    points: int
    confidence: float


def fit_power_law(
    n: np.ndarray, tau: np.ndarray, low: np.ndarray, high: np.ndarray, *, confidence: float = 0.95
) -> PowerLawFit:
    """Fit ``log tau = log c + gamma log n`` to onsets with intervals ``[low, high]`` (at ``confidence``).

    Each point's standard error in ``log tau`` is its interval's half-width in log divided by the normal
    quantile; points without a finite positive interval (censored onsets) are left out.  The standard
    error of gamma is the weighted-least-squares one, scaled by ``sqrt(chi2 / dof)`` when the scatter
    exceeds the points' errors (then the quantile is Student's with ``dof``): the interval covers the
    scatter between seeds, not only each point's error.  Fewer than two distinct n: every value nan.
    """
    from scipy import stats

    _check_confidence(confidence)
    n_, tau_, lo_, hi_ = (np.asarray(x, dtype=np.float64) for x in (n, tau, low, high))
    z = stats.norm.ppf(0.5 * (1.0 + confidence))
    good = (np.isfinite(tau_) & np.isfinite(lo_) & np.isfinite(hi_) & (lo_ > 0) & (hi_ > lo_)
            & (tau_ > 0) & (n_ > 0))
    nan = math.nan
    if np.unique(n_[good]).size < 2:
        return PowerLawFit(nan, nan, nan, nan, nan, nan, 0, int(good.sum()), confidence)
    x, y = np.log(n_[good]), np.log(tau_[good])
    sigma = (np.log(hi_[good]) - np.log(lo_[good])) / (2.0 * z)
    w = 1.0 / sigma**2
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    beta = cov @ design.T @ (w * y)
    chi2 = float(np.sum(w * (y - design @ beta) ** 2))
    dof = int(x.size - 2)
    se = math.sqrt(cov[1, 1])
    quantile = z
    if dof > 0 and chi2 / dof > 1.0:
        se *= math.sqrt(chi2 / dof)
        quantile = stats.t.ppf(0.5 * (1.0 + confidence), dof)
    gamma = float(beta[1])
    return PowerLawFit(gamma, gamma - quantile * se, gamma + quantile * se, se, float(math.exp(beta[0])),
                       chi2, dof, int(x.size), confidence)
