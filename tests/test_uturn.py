"""U-turn experiments (diffusion_regimes.uturn) with the exact empirical score on a planted two-class set."""

import math

import torch

from diffusion_regimes.sampler import DDPMAncestral, HeunODE
from diffusion_regimes.score import EmpiricalScore
from diffusion_regimes.uturn import uturn


def _planted(n=40, d=16, seed=0):
    """Two classes at ±5 along e₀ plus unit noise: the sign of the first coordinate is the class."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = torch.randn(n, d, dtype=torch.float64, generator=gen)
    x[:, 0] += 5.0 * (2.0 * labels.double() - 1.0)
    return x, labels


def _labeller(x):
    one = (x.reshape(x.shape[0], -1)[:, 0] > 0).long()
    return torch.nn.functional.one_hot(one, 2).double()


def test_uturn_returns_at_small_t_and_forgets_at_t_max():
    """Training starts (each image 5 times, M = 200): at t = 0.01 the exact score brings every start back
    to itself; at t_max the end is a draw from the memorised set, so the class agrees with probability
    1/2 (the class prior; within 3 SE = 0.106) and the start comes back only as often as any image would
    (1/40; < 0.1 leaves 3 SE of room).  Held-out starts can never "return"."""
    training, labels = _planted()
    starts = training.repeat(5, 1)
    integ = DDPMAncestral.respaced(100)
    t_max = float(integ.times[0])
    common = {"training": training, "score": EmpiricalScore(training), "integrator": integ,
              "labeller": _labeller}
    res = uturn(starts, start_labels=labels.repeat(5), start_index=torch.arange(40).repeat(5),
                times=[0.01, t_max], generator=torch.Generator().manual_seed(1), **common)
    assert res.times[0] < 0.05 and res.times[-1] == t_max
    assert res.returned[0] == 1.0 and res.same_class[0] == 1.0
    assert abs(res.same_class[-1] - 0.5) < 3 * math.sqrt(0.25 / 200)
    assert res.returned[-1] < 0.1 and res.memorised[-1] == 1.0

    held_out, held_labels = _planted(n=40, seed=7)
    res = uturn(held_out, start_labels=held_labels, start_index=torch.full((40,), -1), times=[0.01],
                generator=torch.Generator().manual_seed(2), **common)
    assert res.returned[0] == 0.0 and res.memorised[0] == 1.0  # it copies a training image, not itself


def test_uturn_runs_with_the_ode():
    """The deterministic sampler through the same interface: small-t U-turns come home."""
    training, labels = _planted()
    res = uturn(training, start_labels=labels, start_index=torch.arange(40), times=[0.01],
                training=training, score=EmpiricalScore(training), integrator=HeunODE.on_ddpm_grid(100),
                labeller=_labeller, generator=torch.Generator().manual_seed(3))
    assert res.returned[0] == 1.0 and res.same_class[0] == 1.0


def test_uturn_table_and_midpoints():
    """The table of one curve: the identifying columns, binomial SEs and the two midpoints (the class
    curve halfway between 1 and the class prior; the return curve at 1/2)."""
    import numpy as np
    import pytest

    from diffusion_regimes.uturn import UTURN_COLUMNS, UTurnResult, class_prior, uturn_table, uturn_times

    assert class_prior(torch.tensor([0, 1, 0, 1])) == 0.5
    times = uturn_times(t_min=0.05, t_max=2.5, count=4)
    assert times[0] == pytest.approx(0.05) and times[-1] == pytest.approx(2.5)
    result = UTurnResult(times=np.array([0.1, 0.5, 1.0, 2.0]), same_class=np.array([1.0, 1.0, 0.5, 0.5]),
                         returned=np.array([1.0, 0.0, 0.0, 0.0]), memorised=np.ones(4), starts=100)
    with pytest.raises(ValueError, match="identifying"):
        uturn_table(result, prior=0.5, dataset="toy")
    keys = {"dataset": "toy", "model": "exact", "sampler": "ddpm", "n": 10, "starts_from": "training",
            "t_s_theory": 1.0, "t_c_entropy": 0.3, "seed": 0}
    table = uturn_table(result, prior=0.5, **keys)
    assert tuple(table.columns) == UTURN_COLUMNS and len(table) == 4
    assert table["t_class_mid"].iloc[0] == pytest.approx(0.75)  # 1 -> 0.5 between t = 0.5 and 1: 0.75 at 0.75
    assert table["t_return_mid"].iloc[0] == pytest.approx(0.3)
    assert table["same_class_se"].iloc[2] == pytest.approx(0.05)
