"""The ideal-models comparison: r^2, bootstrap medians, P(t) calibration and the same-noise experiment."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.ideal_models import (
    IdealModelsSpec,
    compare_ideal_models,
    median_interval,
    r_squared,
)
from diffusion_regimes.local_score import full_patch
from diffusion_regimes.score import EmpiricalScore


def test_r_squared_closed_forms() -> None:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(4, 1, 5, 5, generator=gen)
    assert torch.allclose(r_squared(u, u), torch.ones(4, dtype=torch.float64))
    # predicting each image's own mean grey level explains nothing: r^2 = 0
    flat_mean = u.mean(dim=(1, 2, 3), keepdim=True).expand_as(u)
    assert torch.allclose(r_squared(u, flat_mean), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    # residual = half the spread in every pixel: r^2 = 1 - 1/4
    centred = u - u.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(r_squared(u, u - 0.5 * centred), torch.full((4,), 0.75, dtype=torch.float64))


def test_median_interval_brackets_the_median() -> None:
    values = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    med, lo, hi = median_interval(values, n_boot=500, generator=torch.Generator().manual_seed(1))
    assert med == pytest.approx(0.5) and lo < med < hi
    # the median of 101 uniform points has standard error ~ 1.25 / (2 sqrt(101)) ~ 0.06; 95 % ~ +-0.12
    assert 0.05 < hi - lo < 0.4


def test_spec_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="odd"):
        IdealModelsSpec(patch_sizes=(4,))
    with pytest.raises(ConfigError, match="reference"):
        IdealModelsSpec(networks=("local",), reference="digits")


def test_a_network_that_is_the_exact_score_is_followed_by_exact_and_by_whole_image_ls() -> None:
    # The "network" here is the exact score itself: from the same noises the exact machine retraces it
    # (r^2 = 1), and the LS calibration, offered the whole-image patch, must pick it at every time (where
    # LS *is* the exact score), so LS retraces it too.  ELS (patches from everywhere) must not.
    gen = torch.Generator().manual_seed(2)
    data = torch.randn(12, 1, 6, 6, generator=gen, dtype=torch.float64) * 0.5
    exact = EmpiricalScore(data.reshape(12, -1), precision="float64")
    whole = full_patch(6, 6)
    spec = IdealModelsSpec(networks=("digits",), n_noises=6, sampler_steps=6, patch_sizes=(3, whole),
                           calibration_noises=4, calibration_times=3, calibration_t_min=0.05,
                           calibration_t_max=1.0, els_bank_size=None, bank_sizes=(20,), bank_study_noises=3,
                           grid_noises=2, n_boot=50)
    result = compare_ideal_models(training=data, networks={"digits": exact}, spec=spec, seed=0)
    summary = result.summary.set_index("model")
    assert summary.loc["exact", "r2_median"] == pytest.approx(1.0, abs=1e-9)
    assert summary.loc["ls", "p_min"] == whole and summary.loc["ls", "p_max"] == whole
    assert summary.loc["ls", "r2_median"] == pytest.approx(1.0, abs=1e-4)
    assert summary.loc["els", "r2_median"] < 0.99
    # the exact score of 12 points memorises from any noise: every sample is a training point
    assert summary.loc["exact", "memorised_fraction"] == 1.0
    assert set(result.calibration["model"]) == {"ls", "els"}
    chosen = result.calibration[result.calibration["chosen"]]
    assert len(chosen) == 2 * len(set(result.calibration["t"]))
    # denoiser outputs along the trajectory: exact vs itself at every step
    exact_traj = result.trajectory[result.trajectory["model"] == "exact"]
    assert len(exact_traj) == spec.sampler_steps and (exact_traj["r2_median"] > 1 - 1e-9).all()
    assert sorted(result.bank_study["bank_size"]) == [20, 12 * 36]
    assert result.grid["exact"].shape == (2, 1, 6, 6) and not math.isnan(summary.loc["els", "r2_low"])
