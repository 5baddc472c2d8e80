"""The learned-score path end to end: a (tiny, barely trained) UNet goes through the same CLI commands as the
exact score (regimes-clone / -entropy / -row / -table / -figures) and its row carries the checkpoint step."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from diffusion_regimes.cli import main
from diffusion_regimes.data import PreparedSubset
from diffusion_regimes.errors import ConfigError
from diffusion_regimes.regimes import RegimesSpec

N = 24  # images of the synthetic subset (even: balanced classes)
REGIMES = {"n_values": [12, "all"], "n_pairs": 3, "chunk_pairs": 2,
           "sampler_steps": {"exact": 20, "unet": 10}, "branch_uniform": 3, "branch_dense": 0, "n_boot": 20,
           "entropy_times": 3, "n_prime": 20, "strip_times": 3}


def _subset(path):
    """Two classes of 1x16x16 images told apart by which half is bright (a classifier learns it at once)."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(N) % 2  # classes alternate, so even prefixes are balanced
    images = 0.1 * torch.randn(N, 1, 16, 16, generator=gen)
    images[labels == 0, :, :, :8] += 0.5
    images[labels == 1, :, :, 8:] += 0.5
    means = images.mean(dim=(0, 2, 3))
    PreparedSubset(images=images - means.reshape(1, -1, 1, 1), labels=labels, classes=("left", "right"),
                   channel_means=means, dataset="toy", indices=tuple(range(N))).save(path)


def test_n_values_sentinel_and_per_dataset():
    spec = RegimesSpec(n_values=(100, "all"))
    assert spec.n_values_for("mnist", subset_n=1000) == (100, 1000)
    assert spec.n_values_for("lsun_n200", subset_n=200) == (100, 200)
    per = RegimesSpec(n_values={"mnist": (10, 20)})
    assert per.n_values_for("mnist", subset_n=1000) == (10, 20)
    assert per.n_values_for("cifar10", subset_n=3000) == (3000,)  # left out: the whole subset
    with pytest.raises(ConfigError, match="exceeds"):
        RegimesSpec(n_values=(2000,)).n_values_for("mnist", subset_n=1000)
    with pytest.raises(ConfigError, match="not valid"):
        RegimesSpec(n_values=(7,)).n_values_for("mnist", subset_n=1000)


def test_unet_rows_end_to_end(tmp_path):
    _subset(tmp_path / "subset.pt")
    spec = json.dumps(REGIMES)
    common = ["--seed", "0", "--device", "cpu", "--threads", "1"]
    clf_spec = json.dumps({"epochs": 3, "min_accuracy": 0.0, "batch_size": 8})
    assert main(["classifier-train", "--spec", clf_spec, *common, "--subset", str(tmp_path / "subset.pt"),
                 "--out", str(tmp_path / "clf.pt")]) == 0
    train = {"steps": 3, "batch_size": 8, "checkpoint_every": 3, "log_every": 1, "grid_images": 0}
    ckpt = tmp_path / "final.pt"
    assert main(["train-ddpm", "--spec", json.dumps(train), "--unet-spec", json.dumps({"preset": "tiny"}),
                 *common, "--dataset", "toy", "--subset", str(tmp_path / "subset.pt"),
                 "--run-dir", str(tmp_path / "runs"),
                 "--checkpoint", str(ckpt), "--loss-table", str(tmp_path / "loss.csv"),
                 "--figure", str(tmp_path / "train.pdf")]) == 0

    pd.DataFrame({"dataset": ["toy"], "lambda_first_channel": [4.0]}).to_csv(tmp_path / "s.csv", index=False)
    for n in (12, N):
        assert main(["regimes-entropy", "--spec", spec, *common, "--subset", str(tmp_path / "subset.pt"),
                     "--n", str(n), "--out", str(tmp_path / f"n{n}" / "entropy.csv")]) == 0

    def clone(model, n, extra=()):
        out = tmp_path / f"n{n}" / model
        files = [a for name in ("branches.csv", "trajectories.csv", "summary.json", "strip.pt", "samples.pt")
                 for a in (f"--{name.split('.')[0]}", str(out / name))]
        return main(["regimes-clone", "--spec", spec, *common, "--dataset", "toy",
                     "--subset", str(tmp_path / "subset.pt"), "--classifier", str(tmp_path / "clf.pt"),
                     "--spectra", str(tmp_path / "s.csv"),
                     "--entropy", str(tmp_path / f"n{n}" / "entropy.csv"),
                     "--n", str(n), "--model", model, *extra, "--chunk-dir", str(out / "chunks"), *files])

    # the UNet saw all N images: measuring it against a prefix is refused (exit 2, ConfigError)
    assert clone("unet", 12, ["--checkpoint", str(ckpt)]) == 2
    assert clone("unet", N, ["--checkpoint", str(ckpt)]) == 0
    assert clone("exact", N) == 0
    summary = json.loads((tmp_path / f"n{N}" / "unet" / "summary.json").read_text())
    assert summary["checkpoint_step"] == 3 and summary["steps"] == 10 and summary["chunks"] == 2
    record = torch.load(tmp_path / f"n{N}" / "unet" / "samples.pt", weights_only=True)
    assert record["samples"].shape == (3, 1, 16, 16) and record["neighbours"].shape == (3, 2)
    # the exact score at n = 24 copies its training points (d = 256, t -> 0): ratio ~ 0, all memorised
    exact = torch.load(tmp_path / f"n{N}" / "exact" / "samples.pt", weights_only=True)
    assert (exact["memorisation_ratio"] < 1 / 3).all()

    rows = []
    for model in ("exact", "unet"):
        rows.append(str(tmp_path / f"n{N}" / model / "row.csv"))
        assert main(["regimes-row", "--spec", spec,
                     "--summary", str(tmp_path / f"n{N}" / model / "summary.json"),
                     "--entropy", str(tmp_path / f"n{N}" / "entropy.csv"),
                     "--spectra", str(tmp_path / "s.csv"),
                     "--dataset", "toy", "--model", model, "--out", rows[-1]]) == 0
    assert main(["regimes-table", "--rows", *rows, "--out", str(tmp_path / "regimes.csv")]) == 0
    table = pd.read_csv(tmp_path / "regimes.csv").set_index("model")
    assert table.loc["unet", "checkpoint_step"] == 3 and pd.isna(table.loc["exact", "checkpoint_step"])
    assert table.loc["exact", "memorised_fraction"] == 1.0
    assert 0.0 <= table.loc["unet", "memorised_fraction"] <= 1.0
    # every row carries its quality verdict: "ok" exactly when quality_ok
    assert all((verdict == "ok") == bool(ok) for verdict, ok in zip(table["quality"], table["quality_ok"],
                                                                      strict=True))

    figs = {stem: tmp_path / f"{stem}.pdf" for stem in ("phi", "collapse", "strip", "neighbours")}
    sweeps = [f"n{N}/{model}" for model in ("exact", "unet")]
    assert main(["regimes-figures", "--table", str(tmp_path / "regimes.csv"), "--dataset", "toy",
                 "--sweeps", *[f"{model}/{N}" for model in ("exact", "unet")],
                 *[a for kind, name in (("branches", "branches.csv"), ("trajectories", "trajectories.csv"),
                                        ("samples", "samples.pt"), ("strip", "strip.pt"))
                   for a in (f"--{kind}", *[str(tmp_path / s / name) for s in sweeps])],
                 "--entropy", str(tmp_path / f"n{N}" / "entropy.csv"),
                 "--subset", str(tmp_path / "subset.pt"),
                 *[a for stem, p in figs.items() for a in (f"--out-{stem}", str(p))]]) == 0
    assert all(p.is_file() and p.with_suffix(".png").is_file() for p in figs.values())

