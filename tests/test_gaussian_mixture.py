"""Gaussian-mixture speciation: full-d and reduced engines against each other and against the theory."""

import math

import numpy as np
import pytest
import torch

from diffusion_regimes import theory
from diffusion_regimes.gaussian_mixture import GaussianMixture, collapse, collapse_times_grid, speciation

# branch times around t_S = 1/2 log 256 = 2.77, where phi varies most; a subset of the paper's grid keeps
# the full 256-dimensional engine to a few seconds
BRANCH = (2.0, 2.5, 3.0, 3.5)
D = 256


@pytest.fixture(scope="module")
def runs():
    # small per-step tensors: one thread avoids sync overhead (3x faster than 2 on a loaded 2-core box)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    mixture = GaussianMixture.uniform(D)
    # 500 steps (eta = 0.02): both engines share the grid, so their comparison is exact in law
    kwargs = dict(branch_times=BRANCH, t_max=10.0, n_steps=500, level=0.775, n_boot=200)
    full = speciation(mixture, engine="full", pairs=800, generator=torch.Generator().manual_seed(1), **kwargs)
    reduced = speciation(mixture, engine="reduced", pairs=4000, generator=torch.Generator().manual_seed(2),
                         **kwargs)
    torch.set_num_threads(threads)
    return full, reduced


def test_engines_agree(runs):
    full, reduced = runs
    np.testing.assert_allclose(full.branch_times, reduced.branch_times)
    # independent runs: difference within 4 combined standard errors at every branch time
    se = np.sqrt(full.stderr**2 + reduced.stderr**2)
    assert np.all(np.abs(full.phi - reduced.phi) < 4 * se), (full.phi, reduced.phi, se)


def test_engines_agree_with_theory(runs):
    for res in runs:
        phi = theory.cloning_probability(res.branch_times, d=D)
        # 4 SE plus the Euler-Maruyama bias (O(eta) = 0.02 in the drift, below 1e-2 in phi)
        assert np.all(np.abs(res.phi - phi) < 4 * res.stderr + 1e-2), (res.engine, res.phi, phi)
        assert res.crossing.low <= float(theory.t_speciation(D)) + 0.1
        assert res.crossing.high >= float(theory.t_speciation(D)) - 0.1


def test_reduction_and_exact_pt_samples():
    gen = torch.Generator().manual_seed(0)
    mix = GaussianMixture.random(64, generator=gen)
    assert float(mix.m.norm()) == pytest.approx(8.0)
    red = mix.reduced()
    assert red.d == 1 and float(red.m[0]) == pytest.approx(8.0)
    t = 1.3
    x = mix.sample_pt(20_000, t=t, generator=gen)
    q = x @ mix.m / mix.m.norm()
    # P_t projected: +-|m| e^{-t} with variance Gamma_t; |q| has mean ~|m| e^{-t} (clusters well apart)
    assert float(q.abs().mean()) == pytest.approx(8.0 * math.exp(-t), rel=0.02)
    # orthogonal directions: variance Gamma_t per coordinate
    assert float((x - q[:, None] * mix.m / mix.m.norm()).var()) == pytest.approx(
        1.0, rel=0.02)  # Gamma_t = 1 for sigma = 1


def test_collapse_small_case_follows_theory():
    times = np.geomspace(4.0, 0.2, 12)
    res = collapse(n=2000, d=32, times=times, n_prime=512, mu_tilde=1.0, sigma=1.0, level=0.1,
                   max_chunk_bytes=2**26, generator=torch.Generator().manual_seed(0))
    # large t: f^e/alpha -> 1; t_C numeric within 0.25 of the theory (finite n smooths the kink)
    assert res.entropy.f[0] / res.entropy.alpha == pytest.approx(1.0, abs=0.05)
    assert res.numeric.time == pytest.approx(res.t_c_theory, abs=0.25)


def test_linear_collapse_grid_is_the_authors_grid():
    # The authors' Fig. 3 times: t_i = 8 (1 - 0.98 i / 20) = 8 (1 - 0.049 i), i = 0..19 (8 down to 0.552).
    times = collapse_times_grid(t_max=8.0, t_min=0.552, n_times=20, kind="linear")
    np.testing.assert_allclose(times, 8.0 * (1 - 0.049 * np.arange(20)), rtol=1e-12)
    geometric = collapse_times_grid(t_max=8.0, t_min=0.552, n_times=20)
    np.testing.assert_allclose(geometric[1:] / geometric[:-1], (0.552 / 8.0) ** (1 / 19), rtol=1e-12)
