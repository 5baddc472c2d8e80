"""The excess-entropy estimator against a direct float64 evaluation, chunk invariance, and t_C read-off."""

import math

import numpy as np
import pytest
import torch

from diffusion_regimes import theory
from diffusion_regimes.entropy import (
    NOISE_BLOCK,
    NOISE_DTYPE,
    ExcessEntropy,
    collapse_time,
    entropy_time_grid,
    excess_entropy,
)
from diffusion_regimes.errors import ConfigError

TIMES = [0.2, 0.7, 1.5, 4.0]


def _data(n, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, dtype=torch.float64, generator=gen)


def _direct(data, times, n_prime, seed):
    """f^e = s_sep - s^e from the definitions (docs/science.md section 2), float64, same random draws."""
    n, d = data.shape
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in times:
        dlt = 1.0 - math.exp(-2 * t)
        mu = torch.randint(0, n, (n_prime,), generator=gen)
        n_blocks = math.ceil(n_prime / min(NOISE_BLOCK, n_prime))
        seeds = torch.randint(0, 2**62, (n_blocks,), generator=gen).tolist()
        block = min(NOISE_BLOCK, n_prime)
        noise = torch.cat([
            torch.randn(min(block, n_prime - s), d, dtype=NOISE_DTYPE,
                        generator=torch.Generator().manual_seed(seeds[s // block]))
            for s in range(0, n_prime, block)
        ]).to(torch.float64)
        b = data * math.exp(-t)
        x = b[mu] + math.sqrt(dlt) * noise
        sq = ((x[:, None, :] - b[None, :, :]) ** 2).sum(-1)  # (n', n) direct distances
        log_p = torch.logsumexp(-sq / (2 * dlt) - 0.5 * d * math.log(2 * math.pi * dlt), dim=1) - math.log(n)
        s_e = -log_p.mean().item() / d
        s_sep = math.log(n) / d + 0.5 + 0.5 * math.log(2 * math.pi * dlt)
        out.append(s_sep - s_e)
    return np.array(out)


def test_matches_direct_float64_definition():
    data = _data(200, 12)
    res = excess_entropy(data, times=TIMES, n_prime=300, generator=torch.Generator().manual_seed(5),
                         matmul_dtype=torch.float64, control_variate=False)
    # same samples, same float64 arithmetic up to summation order: agreement to round-off
    np.testing.assert_allclose(res.f, _direct(data, TIMES, 300, 5), rtol=0, atol=1e-12)
    assert res.alpha == pytest.approx(math.log(200) / 12)
    assert res.n == 200 and res.d == 12 and res.n_prime == 300
    assert np.all(res.f_stderr > 0)


def test_control_variate_same_mean_smaller_error():
    data = _data(1000, 256, seed=2)
    kwargs = dict(times=[0.3, 1.0, 2.5, 6.0], n_prime=400)
    plain = excess_entropy(data, generator=torch.Generator().manual_seed(7), control_variate=False, **kwargs)
    cv = excess_entropy(data, generator=torch.Generator().manual_seed(7), **kwargs)
    # same samples; the two estimates differ by the sample mean of a zero-mean term: within 4 plain SE
    assert np.all(np.abs(cv.f - plain.f) < 4 * plain.f_stderr)
    # at large t the chi-square noise dominates the plain estimator: the control variate removes most of it
    assert cv.f_stderr[-1] < 0.2 * plain.f_stderr[-1]
    assert np.all(cv.f >= -1e-6)  # h_nu >= 0 exactly; float32 exponentials may round it by ~1e-7


def test_chunking_does_not_change_result():
    data = _data(500, 20)
    kwargs = dict(times=TIMES, n_prime=700)
    big = excess_entropy(data, generator=torch.Generator().manual_seed(3), max_chunk_bytes=2**30, **kwargs)
    # forces 128-row chunks and ~100-column chunks: the streamed logsumexp and several row chunks run
    small = excess_entropy(data, generator=torch.Generator().manual_seed(3), max_chunk_bytes=300_000,
                           **kwargs)
    # float32 exponentials are taken after subtracting a running max that depends on the chunking, so
    # each term is rounded differently (relative u = 6e-8, i.e. ~u/d in g): 1e-9 is that level
    np.testing.assert_allclose(small.f, big.f, rtol=0, atol=1e-9)
    np.testing.assert_allclose(small.f_stderr, big.f_stderr, rtol=1e-6)
    # all-float64 evaluation: chunking only reorders float64 sums
    exact = dict(matmul_dtype=torch.float64, **kwargs)
    big = excess_entropy(data, generator=torch.Generator().manual_seed(3), max_chunk_bytes=2**30, **exact)
    small = excess_entropy(data, generator=torch.Generator().manual_seed(3), max_chunk_bytes=300_000, **exact)
    np.testing.assert_allclose(small.f, big.f, rtol=0, atol=1e-12)


def test_float32_matmul_matches_float64():
    # d = 512, n = 2000: alpha = 0.015; data centred with unit scale like the studies' data
    data = _data(2000, 512, seed=1)
    kwargs = dict(times=[0.3, 1.0, 3.0], n_prime=256)
    f32 = excess_entropy(data, generator=torch.Generator().manual_seed(2), **kwargs)
    f64 = excess_entropy(data, generator=torch.Generator().manual_seed(2), matmul_dtype=torch.float64,
                         **kwargs)
    # the comment in entropy.py bounds the float32 error of g_nu by ~sqrt(d) u / Delta ~ 3e-6 here; the
    # mean over n' samples is smaller still.  Asking 1e-3 of alpha (1.5e-5) leaves a margin of ~5.
    np.testing.assert_allclose(f32.f, f64.f, rtol=0, atol=1e-3 * f64.alpha)


def test_limits_large_t_gives_alpha_and_small_t_gives_zero():
    data = _data(400, 32, seed=4)
    res = excess_entropy(data, times=[0.01, 9.0], n_prime=2000, generator=torch.Generator().manual_seed(0))
    # t = 9: P_t^e is n copies of one Gaussian, f = alpha exactly up to e^{-9} corrections and MC error
    assert res.f[1] == pytest.approx(res.alpha, abs=4 * res.f_stderr[1] + 1e-3 * res.alpha)
    # t -> 0: every sample sits on its own training point, f -> 0 (>= 0 up to MC error)
    assert abs(res.f[0]) < 4 * res.f_stderr[0] + 1e-3


def test_rejects_budget_too_small():
    with pytest.raises(ValueError, match="max_chunk_bytes"):
        excess_entropy(_data(50, 8), times=[1.0], n_prime=10, generator=torch.Generator(), max_chunk_bytes=10)


def _synthetic(n, d, times, noise, seed=0):
    f = theory.excess_entropy_theory(times, n=n, d=d)
    rng = np.random.default_rng(seed)
    alpha = math.log(n) / d
    se = np.full_like(f, noise * alpha)
    return ExcessEntropy(times=np.asarray(times), f=f + rng.normal(0, 1, f.shape) * se, f_stderr=se,
                         alpha=alpha, n=n, d=d, n_prime=1000)


def test_collapse_time_reads_theory_zero():
    n, d = 20_000, 256
    times = np.geomspace(8, 0.55, 20)
    t_c = float(theory.t_collapse(n, d))
    exact = collapse_time(_synthetic(n, d, times, noise=0.0), level=1e-9)
    # noiseless theory curve, level ~0: the crossing is the kink at t_C up to linear interpolation between
    # geometric grid points (spacing ~0.2 around t_C): a kinked line interpolated is off by < one spacing
    assert exact.time == pytest.approx(t_c, abs=0.2)
    noisy = collapse_time(_synthetic(n, d, times, noise=0.03, seed=1), level=0.1)
    # noise of 3 % of alpha: the isotonic fit keeps a single crossing within ~0.1 of the level-0.1 point
    assert noisy.low <= noisy.time <= noisy.high
    assert noisy.time == pytest.approx(t_c, abs=0.3)


def test_entropy_grid_on_ddpm_steps_is_the_authors_grid():
    # Steps 50, 100, ..., 950 mapped by t = -1/2 log alpha_bar(k), alpha_bar(k) = prod_{s<=k} (1 - beta_s)
    # with beta linear from 1e-4 to 2e-2 over 1000 steps (docs/science.md section 1), computed here
    # independently.
    times = entropy_time_grid("ddpm_steps", t_min=0.02, t_max=3.0, n_times=20, step_every=50)
    betas = np.linspace(1e-4, 2e-2, 1000)
    expected = -0.5 * np.cumsum(np.log1p(-betas))[np.arange(50, 1000, 50) - 1]
    np.testing.assert_allclose(times, expected, rtol=1e-12)
    assert times.size == 19 and round(times[0], 3) == 0.015 and round(times[-1], 2) == 4.57
    geometric = entropy_time_grid("geometric", t_min=0.02, t_max=3.0, n_times=20, step_every=50)
    np.testing.assert_allclose(geometric[[0, -1]], [0.02, 3.0], rtol=1e-12)
    with pytest.raises(ConfigError, match="entropy_grid"):
        entropy_time_grid("linear", t_min=0.02, t_max=3.0, n_times=20, step_every=50)


def test_leaves_the_training_set_untouched():
    # float64 data is its own float64 view: the estimator's in-place work must never reach it
    data = _data(50, 8)
    before = data.clone()
    excess_entropy(data, times=[0.5], n_prime=40, generator=torch.Generator().manual_seed(0),
                   matmul_dtype=torch.float64)
    assert torch.equal(data, before)
