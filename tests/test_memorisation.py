"""The memorisation stage's package functions (docs/science.md, "Training time: memorisation")."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.memorisation import (
    SERIES_COLUMNS,
    TIMES_COLUMNS,
    MemorisationSpec,
    SeriesInputs,
    denoising_losses,
    onset_times,
    run_series,
)


def test_denoising_loss_of_the_zero_predictor_is_the_noise_variance() -> None:
    """xi_theta = 0 gives loss |xi|^2 / d, mean 1 and standard error sqrt(2/d)/sqrt(R) (chi-square of d
    degrees of freedom / d); with common random numbers two image sets differ by exactly 0."""
    images = torch.randn(10, 1, 8, 8)
    other = torch.randn(30, 1, 8, 8)
    (loss, se), (loss_other, gap_se) = denoising_losses(lambda x, k: torch.zeros_like(x), [images, other],
                                                        evaluations=4000, seed=0)
    assert loss == loss_other and gap_se == 0.0
    expected_se = math.sqrt(2.0 / 64) / math.sqrt(4000)
    assert abs(loss - 1.0) < 4 * expected_se
    assert se == pytest.approx(expected_se, rel=0.1)


def test_denoising_loss_sees_a_memorising_denoiser() -> None:
    """The exact posterior-mean denoiser of a training set of one image: zero loss on it, positive loss on
    another image (the generalisation gap of a perfectly memorising model)."""
    from diffusion_regimes.schedule import DDPMSchedule

    alpha_bar = DDPMSchedule().alpha_bar.to(torch.float32)
    a = torch.randn(1, 1, 4, 4)

    def oracle(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:  # xi = (x - sqrt(abar) a) / sqrt(1 - abar)
        abar = alpha_bar[k].view(-1, 1, 1, 1)
        return (x - abar.sqrt() * a) / (1 - abar).sqrt()

    (train, _), (held, gap_se) = denoising_losses(oracle, [a, a + 1.0], evaluations=4096, seed=1)
    # on a + 1 the oracle's error is sqrt(abar / (1 - abar)) per pixel: loss E_k[abar / (1 - abar)]
    abar = alpha_bar[1:].double()
    expected = float((abar / (1 - abar)).mean())
    assert train < 1e-8
    assert held == pytest.approx(expected, abs=4 * gap_se) and gap_se < 0.5 * expected


def test_series_plan_and_spec_checks() -> None:
    spec = MemorisationSpec(n_values=(16, 32, 64), seeds=(0,), extra_seeds=(1, 2), extra_seed_sizes=2,
                            widths=(16, 32), width_n=32)
    assert spec.series() == [(16, 16, 0), (16, 16, 1), (16, 16, 2), (16, 32, 0), (16, 32, 1), (16, 32, 2),
                             (16, 64, 0), (32, 32, 0)]
    with pytest.raises(ConfigError, match="even"):
        MemorisationSpec(n_values=(15,))
    with pytest.raises(ConfigError, match="ema_decay"):
        MemorisationSpec(ema_decay=0.0)


def _synthetic_table(taus: dict[int, float], *, samples: int = 64) -> pd.DataFrame:
    """Series with memorised counts drawn from a known logistic onset in log steps (raw) and a 2x later one
    (ema), confident counts from an onset at 300 steps for every n."""
    rng = np.random.default_rng(0)
    steps = np.unique(np.geomspace(50, 50_000, 17).round())
    rows = []
    for n, tau in taus.items():
        for weights, delay in (("raw", 1.0), ("ema", 2.0)):
            p = 1 / (1 + np.exp(-np.log(steps / (tau * delay)) / 0.4))
            q = 1 / (1 + np.exp(-np.log(steps / 300.0) / 0.4))
            mem, conf = rng.binomial(samples, p), rng.binomial(samples, q)
            for s, m, c in zip(steps, mem, conf, strict=True):
                row = dict.fromkeys(SERIES_COLUMNS, 0.0)
                row.update(dataset="mnist", width=16, n=n, seed=0, weights=weights, step=int(s),
                           memorised_count=int(m), memorised_fraction=m / samples, samples=samples,
                           confident_count=int(c), confident_fraction=c / samples,
                           real_confident_fraction=1.0)
                rows.append(row)
    return pd.DataFrame(rows)


def test_onset_times_recover_tau_ema_delay_and_gamma() -> None:
    taus = {16: 400.0, 32: 800.0, 64: 1600.0, 128: 3200.0}
    times = onset_times(_synthetic_table(taus), spec=MemorisationSpec(n_boot=200, quality_confidence_gap=0.1),
                        seed=0)
    assert list(times.columns) == list(TIMES_COLUMNS)
    raw = times[times["weights"] == "raw"].set_index("n")
    ema = times[times["weights"] == "ema"].set_index("n")
    for n, tau in taus.items():
        # 17 checkpoints x 64 samples: the onset is known to ~10 % (one standard deviation, see
        # test_memorisation_estimators); 35 % is beyond 3 of them
        assert raw.loc[n, "tau_mem"] == pytest.approx(tau, rel=0.35)
        assert ema.loc[n, "ema_delay"] == pytest.approx(2.0, rel=0.5)
        # tau_gen: the confident fraction reaches 1.0 - 0.1 at 300 exp(0.4 logit 0.9) = 720 steps, any n
        assert raw.loc[n, "tau_gen"] == pytest.approx(300 * math.exp(0.4 * math.log(9)), rel=0.35)
    assert raw["gamma_low"].iloc[0] < 1.0 < raw["gamma_high"].iloc[0]
    assert abs(raw["gamma"].iloc[0] - 1.0) < 0.2
    assert abs(raw["gamma_gen"].iloc[0]) < 0.2


def test_run_series_end_to_end_on_a_tiny_model(tmp_path) -> None:
    """Train, checkpoint on the grid, measure raw and EMA weights and the exact score; a re-run reads the
    cached measurements back (same table) without training again."""
    images = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.3

    def labeller(x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(x.flatten(1).mean(dim=1, dtype=torch.float64) * 10)
        return torch.stack([p, 1 - p], dim=1)

    inputs = SeriesInputs(images=images, labeller=labeller, real_confident_fraction=0.9, dataset="toy",
                          digest="x")
    spec = MemorisationSpec(preset="tiny", widths=(4,), batch_size=4, lr_warmup=1, first_step=1, min_steps=4,
                            steps_per_image=0, checkpoints_per_decade=3, samples=4, sampler_steps=10,
                            branch_times=(0.05, 1.0), held_out=8, loss_evaluations=16, n_boot=10)
    frame = run_series(inputs, spec=spec, n=4, seed=0, width=4, run_dir=tmp_path, device=torch.device("cpu"))
    assert list(frame.columns) == list(SERIES_COLUMNS)
    assert sorted(frame["step"].unique()) == [1, 2, 4]
    assert set(frame["weights"]) == {"raw", "ema"}
    assert frame["loss_train"].notna().all() and frame["t_c_hat_exact_mean"].notna().all()
    # the exact score of 4 images memorises every sample
    assert (frame["memorised_fraction_exact"] == 1.0).all()
    again = run_series(inputs, spec=spec, n=4, seed=0, width=4, run_dir=tmp_path, device=torch.device("cpu"))
    pd.testing.assert_frame_equal(frame.drop(columns="train_seconds"), again.drop(columns="train_seconds"))
    # a longer series continues the run and keeps (and reuses) the earlier last step, off the lattice
    longer = run_series(inputs, spec=replace(spec, min_steps=8), n=4, seed=0, width=4, run_dir=tmp_path,
                        device=torch.device("cpu"))
    assert sorted(longer["step"].unique()) == [1, 2, 4, 5, 8]
    pd.testing.assert_frame_equal(
        longer[longer["step"] <= 4].drop(columns="train_seconds").reset_index(drop=True),
        frame.drop(columns="train_seconds").reset_index(drop=True))
    with pytest.raises(ConfigError, match="held-out"):
        run_series(inputs, spec=spec, n=36, seed=0, width=4, run_dir=tmp_path, device=torch.device("cpu"))


def test_figure_from_a_synthetic_series(tmp_path) -> None:
    from diffusion_regimes.plots.memorisation import memorisation_figures

    table = _synthetic_table({16: 400.0, 32: 800.0})
    table["memorised_low"] = table["memorised_fraction"] - 0.1
    table["memorised_high"] = table["memorised_fraction"] + 0.1
    table["parameters"] = 280_177
    times = onset_times(table, spec=MemorisationSpec(n_boot=50), seed=0)
    table.to_csv(tmp_path / "m.csv", index=False)
    times.to_csv(tmp_path / "t.csv", index=False)
    written = memorisation_figures(table=tmp_path / "m.csv", times=tmp_path / "t.csv", dataset="mnist",
                                   out=tmp_path / "fig.pdf", seed=0)
    assert [p.suffix for p in written] == [".pdf", ".png"] and all(p.stat().st_size > 1000 for p in written)
