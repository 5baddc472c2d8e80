"""The collapse law on real data (diffusion_regimes.law): the grid, the labeller, one cell end to end."""

import math

import numpy as np
import pytest
import torch

from diffusion_regimes.data import PreparedSubset
from diffusion_regimes.errors import ConfigError
from diffusion_regimes.law import LAW_COLUMNS, law_cell, nearest_class_labeller, top_eigenvalue_of
from diffusion_regimes.regimes import RegimesSpec
from diffusion_regimes.schedule import DDPMSchedule


def _subset(n=40, side=8, seed=0):
    """Two classes of smooth 8x8 images: a bright left or right half (amplitude 1) plus pixel noise 0.1."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = 0.1 * torch.randn(n, 1, side, side, generator=gen)
    images[labels == 0, :, :, : side // 2] += 1.0
    images[labels == 1, :, :, side // 2:] += 1.0
    return PreparedSubset(images=images - images.mean(), labels=labels, classes=("left", "right"),
                          channel_means=torch.zeros(1, dtype=torch.float64), dataset="toy",
                          indices=tuple(range(n)))


def test_law_sizes_allow_odd_n_and_all():
    spec = RegimesSpec(law_n_values=(25, 50, "all"))
    assert spec.law_n_for(subset_n=1000) == (25, 50, 1000)
    with pytest.raises(ConfigError, match="outside"):
        RegimesSpec(law_n_values=(2000,)).law_n_for(subset_n=1000)


def test_law_branch_times_are_geometric_around_the_entropy_collapse_time():
    spec = RegimesSpec(law_branches=16, law_t_min_factor=0.25, law_t_max_factor=8.0)
    times = spec.law_branch_times(t_collapse=0.01, schedule=DDPMSchedule())
    assert times.size == 16 and times[0] == pytest.approx(0.0025) and times[-1] == pytest.approx(0.08)
    assert np.allclose(np.diff(np.log(times)), math.log(32) / 15)
    fallback = spec.law_branch_times(t_collapse=float("nan"), schedule=DDPMSchedule())
    assert fallback[0] == pytest.approx(spec.law_entropy_t_min) and fallback[-1] == pytest.approx(2.5)


def test_nearest_class_labeller_labels_the_training_images_themselves():
    subset = _subset()
    probs = nearest_class_labeller(subset.images, subset.labels)(subset.images + 0.01)
    assert probs.shape == (40, 2) and torch.equal(probs.argmax(dim=1), subset.labels)


def test_one_cell_end_to_end():
    """A 4x4 pooling of the toy set, n = 21 (odd): Λ of the pooled set, alpha = log(n)/d, a finite f^e t_C,
    a sampled t_C; the exact score memorises every sample."""
    subset = _subset()
    spec = RegimesSpec(law_pairs=8, law_steps=50, law_branches=5, n_boot=20, n_prime=200, entropy_times=8,
                       chunk_pairs=8)
    row = law_cell(subset, side=4, n=21, spec=spec, seed=0)
    assert tuple(row) == LAW_COLUMNS
    assert row["d"] == 16 and row["resolution"] == 4 and row["n"] == 21
    assert row["alpha"] == pytest.approx(math.log(21) / 16)
    assert row["Lambda"] == pytest.approx(top_eigenvalue_of(subset.pooled(4).images))
    # centred, every pooled pixel is ±1/2 with the class (perfectly correlated): Λ ≈ 16 x 1/4 = 4 (the
    # pixel noise adds 0.01/4 per pixel), so t_S = ½ log Λ > 0
    assert 3.9 < row["Lambda"] < 4.2 and row["t_s_theory"] == pytest.approx(0.5 * math.log(row["Lambda"]))
    assert 0 < row["t_c_entropy"] < 3 and row["t_c_hat_mean"] > 0 and row["memorised_fraction"] == 1.0
    assert row["pairs"] == 8 and row["branch_times"] >= 2
