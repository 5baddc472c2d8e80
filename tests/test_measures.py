import math

import numpy as np
import pytest
import torch

from diffusion_regimes.measures import (
    bootstrap_standard_error,
    bootstrap_weights,
    crossing_time,
    crossing_with_interval,
)


def test_bootstrap_weights_are_counts():
    w = bootstrap_weights(7, n_boot=5, generator=torch.Generator().manual_seed(0))
    assert w.shape == (5, 7) and torch.all(w.sum(dim=1) == 7)


def test_bootstrap_se_matches_binomial_formula():
    gen = torch.Generator().manual_seed(0)
    p, n = 0.8, 4000
    agree = (torch.rand(3, n, generator=gen) < p).double()
    se = bootstrap_standard_error(agree, n_boot=2000, generator=gen)
    exact = math.sqrt(p * (1 - p) / n)
    # the bootstrap SE of a proportion has ~1/sqrt(2 n_boot) ~ 1.6% relative error; allow 10%
    assert torch.allclose(se, torch.full((3,), exact, dtype=torch.float64), rtol=0.1)


def test_crossing_time_linear_interpolation_and_largest():
    t = np.array([3.0, 1.0, 2.0, 0.0])
    v = np.array([0.5, 0.9, 0.7, 1.0])
    # sorted: t=0:1.0, 1:0.9, 2:0.7, 3:0.5 -> 0.775 between t=1 and t=2 at 1 + 0.125/0.2
    assert crossing_time(t, v, 0.775) == pytest.approx(1.625)
    assert math.isnan(crossing_time(t, v, 0.2))
    # two crossings: the largest time wins
    assert crossing_time(np.arange(5.0), np.array([1, 0, 1, 0, 0.0]), 0.5) == pytest.approx(2.5)


def test_crossing_interval_brackets_truth():
    gen = torch.Generator().manual_seed(3)
    times = np.linspace(0, 4, 9)
    prob = 1 - 0.5 * (1 - np.exp(-times))  # crosses 0.775 at t = log(1 / 0.55)
    agree = (torch.rand(9, 3000, generator=gen) < torch.tensor(prob)[:, None]).double()
    cr = crossing_with_interval(times, agree, level=0.775, n_boot=400, generator=gen)
    assert cr.low <= cr.time <= cr.high
    assert cr.low - 0.05 < math.log(1 / 0.55) < cr.high + 0.05


# --- nearest training points, memorisation, collapse times (hand-made cases) ---------------------

from diffusion_regimes.measures import (  # noqa: E402
    MEMORISED_RATIO,
    agreement,
    collapse_times,
    memorisation,
    memorisation_ratio,
    nearest_index,
    two_nearest,
)


def test_nearest_index_hand_made_and_time_scaling():
    data = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    x = torch.tensor([[0.1, 0.0], [3.0, 0.0], [0.0, 6.0]], dtype=torch.float64)
    assert nearest_index(x, data).tolist() == [0, 1, 2]
    # at t = log 2 the training set is halved: [2,0] and [0,5]; x = [0,6] is nearest to [0,5] and
    # x = [1.2, 0] is nearest to [2, 0] although [0,0] wins at t = 0
    x2 = torch.tensor([[1.2, 0.0], [0.0, 6.0]], dtype=torch.float64)
    assert nearest_index(x2, data).tolist() == [0, 2]
    assert nearest_index(x2, data, t=math.log(2.0)).tolist() == [1, 2]


def test_two_nearest_matches_cdist_and_chunking():
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(37, 4, dtype=torch.float64, generator=gen)
    x = torch.randn(9, 4, dtype=torch.float64, generator=gen)
    dist, idx = two_nearest(x, data, max_chunk_bytes=8 * 9 * 5)  # 5 rows per chunk
    ref_d, ref_i = torch.topk(torch.cdist(x, data), 2, dim=1, largest=False)
    assert torch.equal(idx, ref_i)
    torch.testing.assert_close(dist, ref_d, rtol=1e-10, atol=1e-10)


def test_memorisation_ratio_hand_made():
    data = torch.tensor([[0.0], [10.0], [30.0]], dtype=torch.float64)
    x = torch.tensor([[1.0], [5.0], [12.0]], dtype=torch.float64)
    # distances: (1, 9) -> 1/9; (5, 5) -> 1; (2, 12) -> 1/6
    torch.testing.assert_close(memorisation_ratio(x, data),
                               torch.tensor([1 / 9, 1.0, 1 / 6], dtype=torch.float64))
    ratio, indices = memorisation(x, data)
    # the two neighbours, nearest first (the tie of the middle sample has no preferred order)
    assert indices[0].tolist() == [0, 1] and indices[2].tolist() == [1, 0]
    assert sorted(indices[1].tolist()) == [0, 1]
    # 1/9 and 1/6 are below 1/3 (copies), the midpoint is not: memorised fraction 2/3
    assert (ratio < MEMORISED_RATIO).double().mean().item() == 2 / 3


def test_collapse_times_on_hand_made_index_sequences():
    times = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0], dtype=torch.float64)
    seqs = torch.tensor(
        [
            [5, 5, 5, 5, 5],  # never changes: locked from the start, t_C = 4
            [1, 2, 3, 3, 3],  # last change between 3 and 2: locked from t = 2
            [7, 7, 8, 7, 7],  # comes back to 7 at t = 1 (the change at t = 2 counts): locked from t = 1
            [0, 0, 0, 0, 9],  # changes at the very last step: t_C = 0
        ]
    ).T  # (T+1, N)
    assert collapse_times(seqs, times).tolist() == [4.0, 2.0, 1.0, 0.0]
    # Checked every 2 grid points (t = 4, 2, 0 are read): the third trajectory reads 7, 8, 7, so its last
    # change is seen between t = 2 and t = 0 and t̂_C drops from 1 to 0 (one interval lower at most).
    assert collapse_times(seqs, times, check_every=2).tolist() == [4.0, 2.0, 0.0, 0.0]
    # Every 4 (t = 4 and 0 only): the second one reads 1, 3 (t̂_C 2 -> 0); the third one's excursion to 8
    # falls between the checks and is missed, so its t̂_C rises from 1 to 4.
    assert collapse_times(seqs, times, check_every=4).tolist() == [4.0, 0.0, 4.0, 0.0]


def test_agreement_is_phi_summand():
    a = torch.tensor([0, 1, 1, 0])
    b = torch.tensor([0, 0, 1, 1])
    assert agreement(a, b).tolist() == [1.0, 0.0, 1.0, 0.0]
