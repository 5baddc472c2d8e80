"""Closed forms of the Gaussian mixture (docs/science.md section 3) against independent evaluations."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize

from diffusion_regimes import theory
from diffusion_regimes.schedule import delta_t
from diffusion_regimes.score import GaussianMixtureScore, gamma_t


def _phi_quad(t, d, sigma=1.0):
    """The integral exactly as docs/science.md writes it, in y, by adaptive quadrature (scipy.quad)."""
    u = math.sqrt(d) * math.exp(-t)
    v = gamma_t(t, sigma)

    def integrand(y):
        # 1/2 (G+^2 + G-^2) / (G+ + G-) in log space (G+- underflow far from their centre)
        lp = -((y - u) ** 2) / (2 * v) - 0.5 * math.log(2 * math.pi * v)
        lm = -((y + u) ** 2) / (2 * v) - 0.5 * math.log(2 * math.pi * v)
        hi = max(lp, lm)
        num = math.exp(2 * (lp - hi)) + math.exp(2 * (lm - hi))
        den = math.exp(lp - hi) + math.exp(lm - hi)
        return 0.5 * num / den * math.exp(hi)

    width = 14 * math.sqrt(v)
    pts = sorted({-u, 0.0, u})
    val, err = integrate.quad(integrand, -u - width, u + width, points=pts, limit=500,
                              epsabs=1e-13, epsrel=1e-13)
    return val


@pytest.mark.parametrize("d", [256, 4096, 16384])
def test_cloning_probability_against_adaptive_quadrature(d):
    t = np.array([0.5, 1.0, 0.5 * math.log(d) - 0.5, 0.5 * math.log(d), 0.5 * math.log(d) + 1.0, 8.0])
    ours = theory.cloning_probability(t, d=d)
    ref = np.array([_phi_quad(float(s), d) for s in t])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_cloning_probability_limits_and_crossing():
    d = 256
    # t = 0: clusters at distance 2 sqrt(d) = 32 sigma do not overlap, phi = 1 to double precision
    assert theory.cloning_probability(0.0, d=d) == pytest.approx(1.0, abs=1e-12)
    # t -> infinity: P_t forgets the class, two clones agree by chance
    assert theory.cloning_probability(40.0, d=d) == pytest.approx(0.5, abs=1e-12)
    # curves for every d cross near 0.775 at t_S = 1/2 log d (docs/science.md section 3)
    for dd in (256, 1024, 4096, 16384):
        assert theory.cloning_probability(theory.t_speciation(dd), d=dd) == pytest.approx(0.775, abs=2e-3)
    phi = theory.cloning_probability(np.linspace(0, 12, 200), d=d)
    assert np.all(np.diff(phi) <= 1e-15)  # monotone decreasing


def test_collapse_time_is_zero_of_theory_curve():
    for n, d, sigma in [(20_000, 256, 1.0), (20_000, 4096, 1.0), (1000, 64, 0.7), (10**6, 12_288, 1.3)]:
        alpha = math.log(n) / d

        def g(t, alpha=alpha, sigma=sigma):
            return alpha + 0.5 * math.log(delta_t(t) / (delta_t(t) + sigma**2 * math.exp(-2 * t)))

        root = optimize.brentq(g, 1e-6, 30.0, xtol=1e-14)
        assert float(theory.t_collapse(n, d, sigma=sigma)) == pytest.approx(root, rel=1e-10)
        f = theory.excess_entropy_theory(np.array([root * 0.9, root * 1.1, 40.0]), n=n, d=d, sigma=sigma)
        assert f[0] == 0.0 and f[1] > 0.0 and f[2] == pytest.approx(alpha, rel=1e-12)


def test_collapse_time_large_d_is_accurate():
    # n^{2/d} - 1 ~ 2 log(n)/d = 2e-5: expm1 keeps full precision where the naive power would not
    n, d = 20_000, 10**6
    expected = 0.5 * math.log1p(1.0 / (2 * math.log(n) / d + 2 * (math.log(n) / d) ** 2))
    assert float(theory.t_collapse(n, d)) == pytest.approx(expected, rel=1e-9)


def test_speciation_times():
    assert float(theory.t_speciation(1024)) == pytest.approx(0.5 * math.log(1024))
    assert float(theory.t_speciation_spectral(1024, mu_tilde=2.0)) == pytest.approx(0.5 * math.log(4096))


def test_potential_stable_and_double_well():
    d = 1024
    assert np.isfinite(theory.potential(1e4, 0.0, d=d))  # cosh would overflow here
    q = np.linspace(-3, 3, 601)
    t_open = 0.5 * math.log(2 * d)
    above = theory.potential(q, t_open + 0.3, d=d)
    below = theory.potential(q, t_open - 0.3, d=d)
    assert np.argmin(above) == 300  # single well at q = 0
    assert abs(q[np.argmin(below)]) > 0.1  # minimum moved off 0: double well


def test_score_is_gradient_of_log_density():
    """F(x, t) of score.GaussianMixtureScore equals autograd of log P_t (float64)."""
    d, sigma = 7, 0.8
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(d, dtype=torch.float64, generator=gen)
    x = torch.randn(5, d, dtype=torch.float64, generator=gen).requires_grad_(True)
    for t in (0.05, 0.7, 3.0):
        g = gamma_t(t, sigma)
        mean = m * math.exp(-t)
        log_p = torch.logsumexp(
            torch.stack([-((x - mean) ** 2).sum(1), -((x + mean) ** 2).sum(1)]) / (2 * g), dim=0
        )
        (grad,) = torch.autograd.grad(log_p.sum(), x)
        torch.testing.assert_close(GaussianMixtureScore(m, sigma=sigma)(x.detach(), t), grad,
                                   rtol=1e-12, atol=1e-12)


def test_cloning_probability_of_b_limits_and_tail():
    # small b: s(w) = 1/2 + w/4 - w^3/48 + ..., E[w] = b^2/2, so phi = 1/2 + b^2/8 + O(b^4)
    b = np.array([0.0, 1e-3, 1e-2])
    np.testing.assert_allclose(theory.cloning_probability_of_b(b), 0.5 + b**2 / 8, rtol=0, atol=1e-9)
    # the tail 1 - phi = E_z[s(-(b^2/2 + b z))] by adaptive quadrature (relative accuracy where it is tiny)
    for bb in (6.0, 10.0):
        ref, _ = integrate.quad(lambda z, bb=bb: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
                                / (1 + math.exp(bb * bb / 2 + bb * z)), -40, 10, points=[-bb / 2], limit=200,
                                epsabs=0, epsrel=1e-10)
        assert 1.0 - theory.cloning_probability_of_b(bb) == pytest.approx(ref, rel=1e-6)
    # beyond b = 40 the function is 1 exactly; just below, 1 up to the ~1e-13 rounding of the quadrature sum
    assert theory.cloning_probability_of_b(39.9) == pytest.approx(1.0, abs=1e-12)
    assert theory.cloning_probability_of_b(1e4) == 1.0


def test_cloning_probability_spike_broadcasts_over_norm_and_time():
    t = np.linspace(0.0, 6.0, 7)
    m2 = np.array([[64.0], [1024.0]])
    phi = theory.cloning_probability_spike(t[None, :], norm_m2=m2, sigma=0.8)
    assert phi.shape == (2, 7)
    # one quadrature grid per call (sized by the largest b), so separate calls differ by rounding (~1e-14)
    np.testing.assert_allclose(phi[1], theory.cloning_probability(t, d=1024, sigma=0.8), rtol=0, atol=1e-12)
    np.testing.assert_allclose(phi[0], theory.cloning_probability(t, d=256, mu_tilde=0.5, sigma=0.8),
                               rtol=0, atol=1e-12)
