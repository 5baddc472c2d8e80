"""The reverse dynamics on a single Gaussian, where the backward process is known in closed form.

For data a ~ N(0, s2) (one dimension) P_t = N(0, s2 e^{-2t} + Delta_t), score F = -x / (s2 e^{-2t} + Delta_t).
Run backward from the exact P_T, the dynamics must end on N(0, s2).
"""

import math

import pytest
import torch

from diffusion_regimes.sampler import DDPMAncestral, EulerMaruyama, clone_sweep, run_trajectories
from diffusion_regimes.schedule import delta_t

S2 = 0.25


def gaussian_score(x, t):
    return -x / (S2 * math.exp(-2 * t) + delta_t(t))


def _start(n, t, gen):
    return torch.randn(n, 1, dtype=torch.float64, generator=gen) * math.sqrt(S2 * math.exp(-2 * t) + delta_t(t))


@pytest.mark.parametrize("integrator", [EulerMaruyama.uniform(t_max=6.0, n_steps=3000), DDPMAncestral()])
def test_backward_dynamics_recovers_data_variance(integrator):
    gen = torch.Generator().manual_seed(1)
    n = 40_000
    x = _start(n, float(integrator.times[0]), gen)
    x0 = run_trajectories(x, integrator=integrator, score=gaussian_score, generator=gen)
    var = x0.var().item()
    # sampling error of the variance: S2 sqrt(2/n) = 0.7%; Euler bias is O(eta), ~1% at eta = 0.002
    assert var == pytest.approx(S2, rel=0.03)


def test_clone_sweep_shapes_costs_and_branch_at_end():
    gen = torch.Generator().manual_seed(0)
    integ = EulerMaruyama.uniform(t_max=2.0, n_steps=20)
    x = _start(5, 2.0, gen)
    sweep = clone_sweep(x, integrator=integ, score=gaussian_score, branch_indices=[10, 0, 20], generator=gen)
    assert sweep.trunk.shape == (5, 1) and sweep.clones.shape == (3, 5, 1)
    assert sweep.branch_indices == (0, 10, 20)
    assert sweep.branch_times == pytest.approx((2.0, 1.0, 0.0))
    # trunk 20 steps + clone from 0: 20 + clone from 10: 10 (branch at t=0 costs nothing)
    assert sweep.score_evaluations == 20 + 20 + 10
    # a clone branched at t = 0 is the trunk itself; a clone branched at t_max is independent
    assert torch.equal(sweep.clones[2], sweep.trunk)
    assert not torch.allclose(sweep.clones[0], sweep.trunk)


def test_clone_sweep_clone_is_trunk_with_fresh_noise():
    """A clone and the trunk share their state at the branch time: with a noiseless score both agree."""
    integ = EulerMaruyama.uniform(t_max=1.0, n_steps=10)
    x = torch.ones(3, 2, dtype=torch.float64)
    hist = []
    sweep = clone_sweep(
        x, integrator=integ, score=gaussian_score, branch_indices=[4], generator=torch.Generator().manual_seed(0),
        hooks=[lambda i, t, s: hist.append((i, s.shape[0]))],
    )
    assert hist[3] == (4, 3) and hist[4] == (5, 6)
    assert sweep.clones.shape == (1, 3, 2)


# --- shared trunk vs restart-per-branch on the reduced (1-D) Gaussian mixture -----------------------

from diffusion_regimes.measures import bootstrap_standard_error  # noqa: E402
from diffusion_regimes.sampler import (  # noqa: E402
    StepRecorder,
    restart_evaluations,
    restart_sweep,
    shared_trunk_evaluations,
)
from diffusion_regimes.score import GaussianMixtureScore, gamma_t  # noqa: E402


def _gm_start(shape, t, m_norm, gen):
    sign = torch.randint(0, 2, shape, generator=gen).to(torch.float64) * 2 - 1
    z = torch.randn(shape, dtype=torch.float64, generator=gen)
    return sign * m_norm * math.exp(-t) + math.sqrt(gamma_t(t, 1.0)) * z


def test_shared_trunk_phi_equals_restart_phi_on_gaussian_mixture():
    """Same phi(t) from both protocols, within 4 standard errors at every branch time (d = 256,
    t_S = 2.77).  The branch times span phi ~ 1/2 .. 1, so a protocol error would show."""
    d, n_pairs = 256, 3000
    m_norm = math.sqrt(d)
    score = GaussianMixtureScore(torch.tensor([m_norm], dtype=torch.float64))
    integ = EulerMaruyama.uniform(t_max=6.0, n_steps=120)
    branch = [10, 50, 70, 90]  # t = 5.5, 3.5, 2.5, 1.5
    gen = torch.Generator().manual_seed(3)
    trunk = clone_sweep(_gm_start((n_pairs, 1), 6.0, m_norm, gen), integrator=integ, score=score,
                        branch_indices=branch, generator=gen)
    restart = restart_sweep(_gm_start((len(branch), n_pairs, 1), 6.0, m_norm, gen), integrator=integ,
                            score=score, branch_indices=branch, generator=gen)
    phis, ses = [], []
    for sweep in (trunk, restart):
        first, second = sweep.pairs()
        same = ((first[..., 0] > 0) == (second[..., 0] > 0)).double()  # (B, N)
        phis.append(same.mean(dim=1))
        ses.append(bootstrap_standard_error(same, n_boot=300, generator=gen))
    z = (phis[0] - phis[1]).abs() / torch.sqrt(ses[0] ** 2 + ses[1] ** 2)
    assert torch.all(z < 4.0), (phis, z)
    assert phis[0][0] < 0.6 and phis[0][-1] > 0.95  # the test spans the whole transition
    assert trunk.score_evaluations == shared_trunk_evaluations(branch, 120) == 120 + 110 + 70 + 50 + 30
    assert restart.score_evaluations == restart_evaluations(branch, 120) == 4 * 120 + 110 + 70 + 50 + 30


def test_step_recorder_on_trunk():
    integ = EulerMaruyama.uniform(t_max=1.0, n_steps=10)
    x = torch.ones(3, 2, dtype=torch.float64)
    rec = StepRecorder(lambda s, t: s.sum(dim=1), n_trunk=3)
    rec(0, 1.0, x)
    clone_sweep(x, integrator=integ, score=gaussian_score, branch_indices=[4], generator=torch.Generator(),
                hooks=[rec])
    times, values = rec.stacked()
    assert values.shape == (11, 3) and times[0] == 1.0 and times[-1] == 0.0
