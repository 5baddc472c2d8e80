"""The cloning experiment end to end on a tiny synthetic training set (shapes, limits, collapse)."""

import numpy as np
import torch

from diffusion_regimes.regimes import IdealSpec, cloning_experiment
from diffusion_regimes.schedule import DDPMSchedule
from diffusion_regimes.score import EmpiricalScore


def test_cloning_experiment_on_two_clusters_collapses_onto_training_points():
    gen = torch.Generator().manual_seed(0)
    n = 8
    labels = torch.arange(n) % 2
    train = 0.3 * torch.randn(n, 1, 4, 4, dtype=torch.float64, generator=gen)
    train += (2.0 * labels - 1.0).double()[:, None, None, None]
    spec = IdealSpec(n_pairs=24, branch_every=20, branch_max_step=100, n_boot=100, strip_times=3)
    sched = DDPMSchedule(n_steps=100, beta_start=1e-3, beta_end=0.2)  # a short grid keeps the test fast
    res = cloning_experiment(
        score=EmpiricalScore(train.reshape(n, -1)), training=train, spec=spec, generator=gen, schedule=sched,
        labeller=lambda x: (x.reshape(x.shape[0], -1).sum(dim=1) > 0).long(),
    )
    assert res.branch_steps.tolist() == [20, 40, 60, 80, 100]
    assert np.all(np.diff(res.branch_times) > 0)
    # clusters 2 / 0.3 apart in d = 16: a clone branched at the smallest time keeps the class; it keeps the
    # training point more often than one branched from pure noise, and phi_C <= phi since the same training
    # point implies the same class here
    assert res.phi[0] == 1.0 and res.phi_c[0] > res.phi_c[-1]
    assert np.all(res.phi_c <= res.phi + 1e-12)
    # the exact empirical score ends exactly on training points (last DDPM step is noiseless)
    assert np.all(res.memorisation < 1e-6)
    assert res.t_collapse.shape == (24,) and np.all(res.t_collapse >= 0)
    assert res.restart_score_evaluations > res.score_evaluations
    assert len(res.strip) == 3 and res.strip[0][2].shape == (1, 1, 4, 4)
    assert res.branch_table().shape[0] == 5
