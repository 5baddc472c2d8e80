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


def test_stage_end_to_end_through_the_cli(tmp_path) -> None:
    # files to files: a tiny prepared subset and two untrained tiny networks in the trainer's checkpoint
    # format, through ideal-models-compare, -figure and -table (the rule file's three commands)
    import json

    import pandas as pd

    from diffusion_regimes.cli import main
    from diffusion_regimes.config import to_dict
    from diffusion_regimes.data import PreparedSubset
    from diffusion_regimes.ideal_models import TABLE_COLUMNS
    from diffusion_regimes.provenance import save_torch
    from diffusion_regimes.unet import UNet, UNetSpec

    gen = torch.Generator().manual_seed(3)
    images = 0.3 * torch.randn(10, 1, 8, 8, generator=gen)
    PreparedSubset(images=images - images.mean(), labels=torch.arange(10) % 2, classes=("a", "b"),
                   channel_means=torch.tensor([0.2], dtype=torch.float64), dataset="toy",
                   indices=tuple(range(10))).save(tmp_path / "subset.pt")
    checkpoints = []
    for preset in ("tiny", "local"):
        torch.manual_seed(0)
        config = UNetSpec(preset=preset, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, groups=4,
                          zero_init=False).resolve(in_channels=1, image_size=8)
        model = UNet(config)
        save_torch({"step": 7, "model": model.state_dict(), "ema": None,
                    "config": {"unet": to_dict(config)}}, tmp_path / f"{preset}.pt")
        checkpoints += ["--checkpoint", f"{preset}={tmp_path / f'{preset}.pt'}"]
    spec = json.dumps({"networks": ["tiny", "local"], "reference": "tiny", "n_noises": 4,
                       "sampler_steps": 3, "patch_sizes": [1, 3], "calibration_noises": 2,
                       "calibration_times": 2,
                       "els_bank_size": 50, "bank_sizes": [20], "bank_study_noises": 2, "grid_noises": 2,
                       "n_boot": 20})
    out = {name: tmp_path / f"{name}.csv" for name in ("summary", "per-sample", "trajectory", "calibration",
                                                        "bank-study")}
    args = ["ideal-models-compare", "--spec", spec, "--subset", str(tmp_path / "subset.pt"), *checkpoints,
            "--grid", str(tmp_path / "grid.pt"), "--threads", "1", "--device", "cpu"]
    for name, path in out.items():
        args += [f"--{name}", str(path)]
    assert main(args) == 0
    summary = pd.read_csv(out["summary"])
    # per network: the other network, exact, ls, els, and itself
    assert sorted(summary["model"]) == sorted(["exact", "ls", "els", "unet_tiny", "unet_local"] * 2)
    assert (summary["checkpoint_step"] == 7).all() and (summary["n_noises"] == 4).all()
    assert summary["r2_median"].notna().all()
    assert (tmp_path / "summary.csv.provenance.json").is_file()
    assert main(["ideal-models-figure", "--spec", spec, "--dataset", "toy",
                 "--per-sample", str(out["per-sample"]),
                 "--trajectory", str(out["trajectory"]), "--calibration", str(out["calibration"]),
                 "--grid", str(tmp_path / "grid.pt"), "--figure", str(tmp_path / "fig.pdf")]) == 0
    assert (tmp_path / "fig.pdf").stat().st_size > 0 and (tmp_path / "fig.png").stat().st_size > 0
    # the machines' cloning sweep (regimes stage protocol) at the calibrated P(t), then the table with it
    common = ["--seed", "0", "--device", "cpu", "--threads", "1"]
    clf_spec = json.dumps({"epochs": 1, "min_accuracy": 0.0, "batch_size": 4})
    assert main(["classifier-train", "--spec", clf_spec, *common, "--subset", str(tmp_path / "subset.pt"),
                 "--out", str(tmp_path / "clf.pt")]) == 0
    regimes = json.dumps({"branch_uniform": 3, "branch_dense": 0, "n_boot": 20, "chunk_pairs": 2,
                          "entropy_times": 3, "n_prime": 20, "strip_times": 2})
    assert main(["regimes-entropy", "--spec", regimes, *common, "--subset", str(tmp_path / "subset.pt"),
                 "--n", "10", "--out", str(tmp_path / "entropy.csv")]) == 0
    (tmp_path / "spectrum.json").write_text(json.dumps({"lambda_first_channel": 4.0}))
    sweep_spec = json.dumps({**json.loads(spec), "regimes_pairs": 3, "regimes_steps": 8})
    assert main(["ideal-models-regimes", "--spec", sweep_spec, "--regimes-spec", regimes, *common,
                 "--model", "ls", "--subset", str(tmp_path / "subset.pt"),
                 "--calibration", str(out["calibration"]), "--classifier", str(tmp_path / "clf.pt"),
                 "--spectrum", str(tmp_path / "spectrum.json"), "--entropy", str(tmp_path / "entropy.csv"),
                 "--summary", str(tmp_path / "ls.json"), "--branches", str(tmp_path / "ls.csv")]) == 0
    sweep = json.loads((tmp_path / "ls.json").read_text())
    assert sweep["model"] == "ls" and sweep["pairs"] == 3 and 0.0 <= sweep["memorised_fraction"] <= 1.0
    assert main(["ideal-models-table", "--summaries", str(out["summary"]),
                 "--sweeps", str(tmp_path / "ls.json"), "--out", str(tmp_path / "t.csv")]) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == list(TABLE_COLUMNS) and len(table) == 10
    ls_rows = table[table["model"] == "ls"]
    assert (ls_rows["memorised_fraction_ddpm"] == sweep["memorised_fraction"]).all()
    assert table.loc[table["model"] == "exact", "memorised_fraction_ddpm"].isna().all()


def test_overlay_validates_and_default_leaves_the_stage_off(repo) -> None:
    from diffusion_regimes.config import build, deep_merge, load_yaml, validate

    schema = repo / "workflow" / "schemas" / "config.schema.yaml"
    default = load_yaml(repo / "config" / "config.yaml")
    validate(default, schema)
    assert build(IdealModelsSpec, default["ideal_models"], where="ideal_models").datasets == ()
    overlay = load_yaml(repo / "config" / "ideal_models.yaml")
    merged = deep_merge(load_yaml(repo / "config" / "config.yaml"), overlay)
    validate(merged, schema)
    spec = build(IdealModelsSpec, merged["ideal_models"], where="ideal_models")
    assert spec.datasets == ("mnist",) and spec.n_noises >= 100 and set(spec.networks) == {"digits", "local"}
