"""Spectra against closed forms: planted spectrum, Gram vs covariance route, channel conventions."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from diffusion_regimes.spectrum import (
    SpectraOptions,
    centre_pixels,
    covariance_spectrum,
    subset_spectrum,
    t_speciation,
    top_eigenvalue,
)


def _planted(n: int, d: int, top: list[float], seed: int = 0) -> torch.Tensor:
    """Data whose population covariance has eigenvalues `top` then 1, in a random orthogonal basis."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, dtype=torch.float64, generator=g)
    z[:, : len(top)] *= torch.tensor(top, dtype=torch.float64).sqrt()
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=g))
    return centre_pixels(z @ q.T)


def test_lobpcg_matches_eigvalsh_of_explicit_covariance():
    x = _planted(600, 300, [25.0, 9.0])
    explicit = np.linalg.eigvalsh((x.T @ x / (x.shape[0] - 1)).numpy())[::-1]
    lam = top_eigenvalue(x, k=2, tol=1e-12)
    # lobpcg converges to machine precision on a well-separated top eigenvalue; 1e-6 is the bar.
    np.testing.assert_allclose(lam.numpy(), explicit[:2], rtol=1e-6)
    # And the sample Λ is near the planted one (sampling error ~ Λ sqrt(2/n) ≈ 6 %; 5 sigma bound).
    assert abs(lam[0] / 25.0 - 1) < 5 * np.sqrt(2 / 600)


def test_gram_and_covariance_routes_agree():
    x = _planted(80, 50, [10.0])
    cov_route = covariance_spectrum(x)  # d < n: covariance
    gram_route = covariance_spectrum(x.T.contiguous()[:, :].T.contiguous())
    assert torch.allclose(cov_route, gram_route)
    wide = x[:30]  # n < d: Gram route, same non-zero eigenvalues as the explicit covariance
    wide = wide - wide.mean(0)
    explicit = torch.linalg.eigvalsh(wide.T @ wide / 29).flip(0)[:30]
    torch.testing.assert_close(covariance_spectrum(wide), explicit, rtol=1e-9, atol=1e-10)


def test_first_channel_vs_all_channels_hand_made():
    # Two images of 3 x 1 x 2 pixels: x and -x (n = 2), so C = 2 x xᵀ (n - 1 = 1) after centring.
    # Channel 0 carries (1, 1), channels 1-2 carry (2, 0) and (0, 2):
    # first channel Λ = 2 |(1,1)|² = 4; all channels Λ = 2 (1 + 1 + 4 + 4) = 20.
    x = torch.tensor([[[[1.0, 1.0]], [[2.0, 0.0]], [[0.0, 2.0]]]])
    images = torch.cat([x, -x])
    res = subset_spectrum(images, options=SpectraOptions(n_boot=0), generator=torch.Generator())
    assert abs(res.lambda_first_channel - 4.0) < 1e-12
    assert abs(res.lambda_all_channels - 20.0) < 1e-12
    assert abs(res.t_s_first_channel - 0.5 * np.log(4.0)) < 1e-12
    assert t_speciation(np.e**2) == 1.0


def test_dense_and_lobpcg_paths_of_subset_spectrum_agree():
    images = _planted(300, 192, [30.0, 12.0], seed=2).reshape(300, 3, 8, 8).float()
    dense = subset_spectrum(images, options=SpectraOptions(n_boot=0, n_top=5), generator=torch.Generator())
    lob = subset_spectrum(images, options=SpectraOptions(n_boot=0, n_top=5, dense_limit=10, tol=1e-12),
                          generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(lob.top_all.numpy(), dense.top_all[:5].numpy(), rtol=1e-6)


def test_cli_chain_on_a_cifar_fixture(tmp_path):
    """prepare-subset -> spectrum -> spectra-table through the CLI on a real-format CIFAR tarball."""
    from tests.test_data import _cifar_tarball  # noqa: PLC0415

    _cifar_tarball(tmp_path / "c.tar.gz", per_batch=40)
    spec = {"format": "cifar10", "path": str(tmp_path / "c.tar.gz"), "classes": ["horse", "automobile"],
            "n": 12, "reference": "cifar10"}
    py = [sys.executable, "-m", "diffusion_regimes"]
    sub = tmp_path / "data" / "subset.pt"
    run = lambda *a: subprocess.run([*py, *a], capture_output=True, text=True, check=True)  # noqa: E731
    run("prepare-subset", "--spec", json.dumps(spec), "--name", "cifar10", "--output", str(sub))
    opts = json.dumps({"n_boot": 3, "n_top": 5})
    run("spectrum", "--spec", opts, "--subset", str(sub), "--output", str(tmp_path / "row.json"),
        "--figure", str(tmp_path / "scree.pdf"))
    former = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "former" / "table1.csv")
    run("spectra-table", "--spec", opts, "--former", former, "--output", str(tmp_path / "spectra.csv"),
        str(tmp_path / "row.json"))
    table = pd.read_csv(tmp_path / "spectra.csv")
    assert table.loc[0, "paper_lambda"] == 16.72 and table.loc[0, "d"] == 3072
    assert table.loc[0, "lambda_all_channels"] >= table.loc[0, "lambda_first_channel"]
    assert (tmp_path / "scree.png").exists() and (tmp_path / "spectra.csv.provenance.json").exists()


def _two_classes(n: int, d: int, *, a: float, spread: float, seed: int = 0):
    """Classes at ±a/2 along e₀, unit noise, plus extra class-blind variance spread² along e₁."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    x[:, 0] += a * (labels.double() - 0.5)
    x[:, 1] *= spread
    return x, labels


def test_pair_statistics_when_the_top_direction_carries_the_classes():
    from diffusion_regimes.spectrum import pair_statistics

    n, a = 20_000, 3.0
    stats = pair_statistics(*_two_classes(n, 8, a=a, spread=1.0))
    # pooled covariance along e₀: 1 + a²/4 = 3.25; sampling SE of an eigenvalue ≈ λ sqrt(2/n) = 1 %
    assert stats.lam == pytest.approx(1 + a**2 / 4, rel=0.03)
    assert stats.lam_delta == pytest.approx(stats.lam, rel=0.01) and stats.cos_delta > 0.99
    # the sign of the e₀ projection gives the class when the noise stays under a/2: Φ(a/2) = 0.933
    assert stats.sign_separation == pytest.approx(0.9332, abs=0.01)
    assert stats.ratio == pytest.approx(3.25, rel=0.05)
    assert stats.t_s_lambda == pytest.approx(0.5 * math.log(stats.lam))


def test_pair_statistics_when_a_class_blind_direction_dominates():
    from diffusion_regimes.spectrum import pair_statistics

    n, a, spread = 20_000, 3.0, 2.5
    stats = pair_statistics(*_two_classes(n, 8, a=a, spread=spread))
    # Λ comes from e₁ (6.25) and says nothing about the classes; λ_Δ keeps the class direction's 3.25
    assert stats.lam == pytest.approx(spread**2, rel=0.03)
    assert stats.lam_delta == pytest.approx(1 + a**2 / 4, rel=0.03) and stats.cos_delta < 0.05
    assert abs(stats.sign_separation - 0.5) < 0.02  # 3.5 SE of a fair coin over 20 000 images
    assert stats.t_s_delta < stats.t_s_lambda


def test_fashion_pairs_command_on_idx_files(tmp_path):
    """All 45 pairs from IDX files (a synthetic 28 x 28 set in which labels differ by a bright patch)."""
    from diffusion_regimes.cli import main
    from tests.test_data import _write_idx

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    images = rng.integers(0, 60, (300, 28, 28))
    for k in range(10):  # class k lights up row k: every pair differs along its own direction
        images[labels == k, k, :] += 150
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    out = tmp_path / "pairs.csv"
    assert main(["fashion-pairs", "--path", str(tmp_path), "--output", str(out),
                 "--figure", str(tmp_path / "pairs.pdf")]) == 0
    table = pd.read_csv(out)
    assert len(table) == 45 and table.iloc[0][["class_a", "class_b"]].tolist() == ["t-shirt/top", "trouser"]
    # the patches dominate the noise: the top component is the class difference for every pair
    assert (table["sign_separation"] == 1.0).all() and (table["cos_delta"] > 0.99).all()
    assert np.allclose(table["t_s_lambda"], 0.5 * np.log(table["Lambda"]))
    assert (tmp_path / "pairs.png").is_file() and (tmp_path / "pairs.csv.provenance.json").is_file()
