"""Curve fits of phi(t) and phi_C(t) (estimators.py) against known curves, exact optimisers and coverage."""

import math

import numpy as np
import pytest
import torch
from scipy import optimize

from diffusion_regimes import estimators, theory
from diffusion_regimes.errors import ConfigError, DataError
from diffusion_regimes.gaussian_mixture import GaussianMixture, speciation

# logit(2 * 0.775 - 1): the 0.775 crossing of 1/2 + 1/2 s(-(t - t_mid)/w) is at t_mid - w * this
_LOGIT_SPECIATION = math.log(0.55 / 0.45)


def _expected_agree(p: np.ndarray, n: int) -> np.ndarray:
    """(B, n) 0/1 rows holding round(n p_b) ones: data whose ML fit is the curve itself up to rounding."""
    k = np.rint(np.asarray(p) * n).astype(int)
    return (np.arange(n)[None, :] < k[:, None]).astype(np.float64)


def _logistic(t: np.ndarray, centre: float, width: float, floor: float) -> np.ndarray:
    return floor + (1.0 - floor) / (1.0 + np.exp((t - centre) / width))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------- theory family
def test_phi_theory_curve_is_the_mixture_curve_and_the_table_matches_it():
    t = np.linspace(0.0, 8.0, 161)
    for d in (64, 256, 4096):
        # Lambda_eff = |m|^2 + sigma^2 = d + 1 for mu~ = sigma = 1
        exact = theory.cloning_probability(t, d=d)
        np.testing.assert_allclose(estimators.phi_theory_curve(t, d + 1.0), exact, rtol=0, atol=1e-14)
        # the interpolated table used inside the fit: error bound 1e-6 (h^2/8 |phi''|, see the module)
        table = estimators._phi_from_log_lambda(np.log(d + 1.0), t)
        np.testing.assert_allclose(table, exact, rtol=0, atol=1e-6)


def test_theory_fit_of_expected_counts_returns_the_true_lambda():
    lam = 300.0
    t = np.linspace(1.6, 4.4, 15)
    agree = _expected_agree(estimators.phi_theory_curve(t, lam), 20_000)
    fit = estimators.fit_speciation_theory(t, agree, n_boot=50, generator=_gen())
    # counts rounded to 1/20000 move the optimum by ~1e-4 in t_S; the table adds < 1e-6 in phi
    assert fit.time == pytest.approx(0.5 * math.log(lam), abs=1e-3)
    assert fit.params["lambda_eff"] == pytest.approx(lam, rel=2e-3)
    assert fit.low < fit.time < fit.high and fit.params["point_failed"] == 0.0


@pytest.mark.parametrize("d", [256, 1024])
def test_theory_fit_recovers_lambda_of_gaussian_mixture_clones(d):
    """Clone pairs of the exact 1-D engine (docs/science.md section 3): 1/2 log Lambda_eff = 1/2 log(d + 1).

    Branch times on the Euler grid (step 0.01) from t_S - 1.2 to t_S + 1.6; the trunks start from exact
    samples of P_t just above the last branch time.  The Euler bias at this step is well below one
    bootstrap standard error (z-scores over 6 seeds at 2000 pairs: mean -0.3, all |z| < 1.7), so 3 SE
    is a statistical tolerance, not room for a bias.
    """
    eta = 0.01
    t_s = 0.5 * math.log(d + 1.0)
    branch = tuple(float(x) for x in np.round((t_s + np.linspace(-1.2, 1.6, 15)) / eta) * eta)
    t_max = round(branch[-1] + 0.2, 2)
    res = speciation(GaussianMixture.uniform(d), engine="reduced", pairs=2000, branch_times=branch,
                     t_max=t_max, n_steps=int(round(t_max / eta)), level=0.775, n_boot=10,
                     generator=_gen(d))
    fit = estimators.fit_speciation_theory(res.branch_times, res.agree, n_boot=400, generator=_gen(1))
    se = fit.params["se"]
    assert 0.005 < se < 0.05  # ~1/sqrt(2000 pairs x 15 times) scale; a collapsed bootstrap would be ~0
    assert abs(fit.time - t_s) < 3.0 * se
    assert fit.n_boot == 400 and fit.params["boot_failed"] == 0.0


def test_theory_fit_is_the_maximum_likelihood():
    """Against scipy's bounded scalar optimiser on the exact-quadrature likelihood (noisy data)."""
    rng = np.random.default_rng(5)
    t = np.linspace(1.0, 4.0, 12)
    n = 300
    agree = (rng.random((t.size, n)) < estimators.phi_theory_curve(t, 150.0)[:, None]).astype(np.float64)
    k = agree.sum(axis=1)

    def nll(log_lam: float) -> float:
        p = np.clip(estimators.phi_theory_curve(t, math.exp(log_lam)), 1e-9, 1 - 1e-9)
        return -float(np.sum(k * np.log(p) + (n - k) * np.log1p(-p)))

    ref = optimize.minimize_scalar(nll, bounds=(3.0, 7.0), method="bounded", options={"xatol": 1e-9})
    fit = estimators.fit_speciation_theory(t, agree, n_boot=20, generator=_gen())
    # the interpolated curve (|error| < 1e-6 in phi) moves the optimum by ~1e-5 against SE ~ 0.02
    assert fit.time == pytest.approx(0.5 * ref.x, abs=2e-4)


# ------------------------------------------------------------------------------ logistic families
@pytest.mark.parametrize(("floor", "fit_fn", "name"), [
    (0.5, estimators.fit_speciation_logistic, "t_mid"),
    (0.0, estimators.fit_collapse_logistic, "t_c"),
])
def test_logistic_fit_of_expected_counts_returns_the_true_curve(floor, fit_fn, name):
    centre, width = 2.3, 0.35
    t = np.linspace(0.5, 4.0, 16)
    agree = _expected_agree(_logistic(t, centre, width, floor), 20_000)
    fit = fit_fn(t, agree, n_boot=50, generator=_gen())
    # rounding the counts to 1/20000 moves the optimum by ~1e-4
    assert fit.params[name] == pytest.approx(centre, abs=1e-3)
    assert fit.params["width"] == pytest.approx(width, abs=1e-3)
    expected = centre - width * _LOGIT_SPECIATION if floor == 0.5 else centre
    assert fit.time == pytest.approx(expected, abs=1e-3)
    assert fit.low < fit.time < fit.high


@pytest.mark.parametrize(("floor", "fit_fn", "name"), [
    (0.5, estimators.fit_speciation_logistic, "t_mid"),
    (0.0, estimators.fit_collapse_logistic, "t_c"),
])
def test_logistic_fit_is_the_maximum_likelihood(floor, fit_fn, name):
    """Against Nelder-Mead on the clipped likelihood, on noisy data with all-ones rows at small t."""
    rng = np.random.default_rng(11)
    t = np.linspace(0.2, 4.0, 14)
    n = 250
    agree = (rng.random((t.size, n)) < _logistic(t, 2.0, 0.2, floor)[:, None]).astype(np.float64)
    assert agree[0].all()  # an all-ones branch time is part of the case
    k = agree.sum(axis=1)

    def nll(x: np.ndarray) -> float:
        p = np.clip(_logistic(t, x[0], math.exp(x[1]), floor), 1e-9, 1 - 1e-9)
        return -float(np.sum(k * np.log(p) + (n - k) * np.log1p(-p)))

    ref = optimize.minimize(nll, [1.8, math.log(0.4)], method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
    fit = fit_fn(t, agree, n_boot=20, generator=_gen())
    assert fit.params[name] == pytest.approx(ref.x[0], abs=1e-5)
    assert fit.params["width"] == pytest.approx(math.exp(ref.x[1]), rel=1e-4)


# -------------------------------------------------------------------------------------- coverage
def _coverage(curve: np.ndarray, t: np.ndarray, truth: float, fit_columns, *, draws: int = 200,
              n: int = 300, n_boot: int = 150, seed: int = 0) -> tuple[float, float, float]:
    """Coverage of the 95 % pair-bootstrap interval over independent binomial draws of ``curve`` (B,).

    The same path as the public fits (pair-bootstrap counts, column fit, percentile interval), with all
    draws x replicates fitted in one call.  Returns (coverage, median half-width, sd of the point fits).
    """
    rng = np.random.default_rng(seed)
    agree = torch.as_tensor((rng.random((draws, t.size, n)) < curve[None, :, None]).astype(np.float64))
    gen = _gen(seed)
    counts = np.concatenate([estimators._counts(a, n_boot=n_boot, generator=gen) for a in agree], axis=1)
    values, ok = fit_columns(counts, n)
    values, ok = values.reshape(draws, 1 + n_boot), ok.reshape(draws, 1 + n_boot)
    assert ok[:, 0].all()
    low, high = estimators._percentile_interval(values[:, 1:], ok[:, 1:], 0.95)
    covered = (low <= truth) & (truth <= high)
    return float(covered.mean()), float(np.median(0.5 * (high - low))), float(values[:, 0].std(ddof=1))


def _check_coverage(coverage: float, half_width: float, sd: float) -> None:
    # 200 draws: a true 95 % coverage gives < 0.90 with probability ~1e-3 and > 0.995 with ~3e-4
    assert 0.90 <= coverage <= 0.995, coverage
    # calibrated width: the median half-width is 1.96 x the spread of the estimator over draws, within
    # the ~10 % sampling error of that spread and of the bootstrap at N = 300
    assert 0.75 < half_width / (1.96 * sd) < 1.33, (half_width, sd)


def test_theory_interval_coverage():
    t = np.linspace(1.4, 4.2, 12)
    lam = 200.0

    def columns(counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        t_fit, ok, _ = estimators._theory_columns(t, counts, n)
        return t_fit, ok

    cov, hw, sd = _coverage(estimators.phi_theory_curve(t, lam), t, 0.5 * math.log(lam), columns)
    _check_coverage(cov, hw, sd)


@pytest.mark.parametrize(("floor", "level"), [(0.5, 0.775), (0.0, 0.5)])
def test_logistic_interval_coverage(floor, level):
    t = np.linspace(0.6, 3.6, 12)
    centre, width = 2.0, 0.4
    truth = centre - width * math.log((level - floor) / (1 - level))  # the level crossing of the true curve

    def columns(counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        sol = estimators._fit_logistic(t, counts, n, floor=floor)
        return estimators._level_time(sol, t, floor=floor, level=level)

    cov, hw, sd = _coverage(_logistic(t, centre, width, floor), t, truth, columns, seed=3)
    _check_coverage(cov, hw, sd)


# ------------------------------------------------------------------------------------ edge cases
ALL_FITS = [estimators.fit_speciation_theory, estimators.fit_speciation_logistic,
            estimators.fit_collapse_logistic]


@pytest.mark.parametrize("fit_fn", ALL_FITS)
def test_all_ones_gives_nan_not_a_number(fit_fn):
    t = np.linspace(0.5, 3.0, 8)
    fit = fit_fn(t, np.ones((t.size, 100)), n_boot=50, generator=_gen())
    assert math.isnan(fit.time) and math.isnan(fit.low) and math.isnan(fit.high)
    assert fit.params["point_failed"] == 1.0
    assert fit.params["boot_failed"] == 50.0 and fit.n_boot == 0


@pytest.mark.parametrize("fit_fn", ALL_FITS)
def test_crossing_beyond_the_branch_times_is_flagged(fit_fn):
    """Branch times that only see the start of the drop: the crossing lies beyond them -> nan, no crash."""
    lam = 1000.0  # t_S = 3.45; phi stays above 0.9 up to t = 2.7 and phi_C below sees the same shape
    t = np.linspace(0.5, 2.2, 8)
    curve = estimators.phi_theory_curve(t, lam)
    if fit_fn is estimators.fit_collapse_logistic:
        curve = 2.0 * curve - 1.0  # from 1 down to 0, still far above 1/2 on these times
    agree = _expected_agree(curve, 2000)
    fit = fit_fn(t, agree, n_boot=50, generator=_gen())
    assert math.isnan(fit.time) and math.isnan(fit.low) and math.isnan(fit.high)
    assert fit.params["point_failed"] == 1.0


def test_barely_covered_crossing_gives_nan_interval():
    """Crossing at the last branch time: about half of the replicates put it outside -> nan ends."""
    t = np.linspace(0.5, 2.5, 9)
    agree = _expected_agree(_logistic(t, 2.5, 0.3, 0.0), 1000)
    fit = estimators.fit_collapse_logistic(t, agree, n_boot=200, generator=_gen())
    assert fit.params["boot_failed"] > 20
    assert math.isnan(fit.low) and math.isnan(fit.high)


def test_half_agreement_gives_no_speciation_time():
    """phi = 1/2 at every branch time: the theory optimum is Lambda_eff -> 1, the domain edge."""
    t = np.linspace(0.5, 3.0, 8)
    agree = np.zeros((t.size, 200))
    agree[:, ::2] = 1.0
    fit = estimators.fit_speciation_theory(t, agree, n_boot=30, generator=_gen())
    assert math.isnan(fit.time) and fit.params["point_failed"] == 1.0


def test_inputs_are_checked():
    t = np.linspace(0.5, 3.0, 8)
    with pytest.raises(DataError, match="agree"):
        estimators.fit_speciation_theory(t, np.ones((7, 10)), n_boot=5, generator=_gen())
    with pytest.raises(DataError, match="0/1"):
        estimators.fit_collapse_logistic(t, np.full((8, 10), 0.5), n_boot=5, generator=_gen())
    with pytest.raises(ConfigError, match="level"):
        estimators.fit_speciation_logistic(t, np.ones((8, 10)), n_boot=5, generator=_gen(), level=0.4)
    with pytest.raises(ConfigError, match="n_boot"):
        estimators.fit_collapse_logistic(t, np.ones((8, 10)), n_boot=0, generator=_gen())
