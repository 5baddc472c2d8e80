"""The local score machines (LS, ELS) against the exact score, direct loops and translation equivariance."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.local_score import (
    EquivariantLocalScore,
    LocalScore,
    PatchSchedule,
    full_patch,
)
from diffusion_regimes.online_softmax import online_softmax
from diffusion_regimes.schedule import delta_t
from diffusion_regimes.score import EmpiricalScore


def _images(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.randn(n, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _window(img: torch.Tensor, i: int, j: int, p: int) -> torch.Tensor:
    """The zero-padded p x p patch of ``img`` (C, H, W) centred on (i, j), written out by hand."""
    c, h, w = img.shape
    out = torch.zeros(c, p, p, dtype=img.dtype)
    r = p // 2
    for di in range(-r, r + 1):
        for dj in range(-r, r + 1):
            if 0 <= i + di < h and 0 <= j + dj < w:
                out[:, di + r, dj + r] = img[:, i + di, j + dj]
    return out


def _loop_ls(data: torch.Tensor, x: torch.Tensor, t: float, p: int) -> torch.Tensor:
    """LS denoiser pixel by pixel, image by image (the definition, no batching)."""
    n, c, h, w = data.shape
    decay, dt = math.exp(-t), float(delta_t(t))
    out = torch.zeros(x.shape[0], c, h, w, dtype=torch.float64)
    for b in range(x.shape[0]):
        for i in range(h):
            for j in range(w):
                q = _window(x[b], i, j, p)
                logits = torch.stack([-((q - decay * _window(data[m], i, j, p)) ** 2).sum() / (2 * dt)
                                      for m in range(n)])
                wts = torch.softmax(logits, dim=0)
                out[b, :, i, j] = (wts[:, None] * data[:, :, i, j]).sum(dim=0)
    return out


def _loop_els(data: torch.Tensor, x: torch.Tensor, t: float, p: int) -> torch.Tensor:
    """ELS denoiser pixel by pixel over every (image, location) patch of the zero-padded training set."""
    n, c, h, w = data.shape
    decay, dt = math.exp(-t), float(delta_t(t))
    places = [(m, k, q) for m in range(n) for k in range(h) for q in range(w)]
    bank = [(_window(data[m], k, q, p), data[m, :, k, q]) for m, k, q in places]
    out = torch.zeros(x.shape[0], c, h, w, dtype=torch.float64)
    for b in range(x.shape[0]):
        for i in range(h):
            for j in range(w):
                q = _window(x[b], i, j, p)
                logits = torch.stack([-((q - decay * patch) ** 2).sum() / (2 * dt) for patch, _ in bank])
                wts = torch.softmax(logits, dim=0)
                out[b, :, i, j] = (wts[:, None] * torch.stack([centre for _, centre in bank])).sum(dim=0)
    return out


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("t", [0.05, 0.7, 3.0])
def test_ls_with_whole_image_patch_is_the_exact_score(channels: int, t: float) -> None:
    # P = 2 max(H, W) - 1: every pixel's window covers the whole image, so every pixel's posterior is the
    # exact score's posterior over whole training images; float64 throughout, so agreement to roundoff
    data = _images(9, channels, 5, 6, seed=1)
    x = math.exp(-t) * data[:3] + math.sqrt(delta_t(t)) * _images(3, channels, 5, 6, seed=2)
    ls = LocalScore(data, patch=full_patch(5, 6), precision="float64")
    exact = EmpiricalScore(data.reshape(9, -1), precision="float64")
    got, want = ls(x, t), exact(x.reshape(3, -1), t).reshape(x.shape)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-9 * float(want.abs().max()))


@pytest.mark.parametrize("p", [1, 3, 5])
def test_ls_matches_a_direct_loop(p: int) -> None:
    data, x = _images(5, 2, 4, 5, seed=3), _images(2, 2, 4, 5, seed=4)
    for t in (0.1, 1.0):
        got = LocalScore(data, patch=p, precision="float64", max_chunk_bytes=2000).denoise(x, t)
        assert torch.allclose(got, _loop_ls(data, x, t, p), atol=1e-10)


def test_ls_mixed_precision_close_to_float64() -> None:
    data, x = _images(40, 1, 8, 8, seed=5), _images(3, 1, 8, 8, seed=6)
    for t in (0.02, 0.5):
        ref = LocalScore(data, patch=5, precision="float64").denoise(x, t)
        fast = LocalScore(data, patch=5).denoise(x, t)
        # float32 differences, squares and window sums: relative logit error ~ P u, posterior weights move by
        # ~1e-5 relative; 1e-4 of the data's scale is a 10x margin
        assert torch.allclose(fast, ref, atol=1e-4)


@pytest.mark.parametrize("p", [1, 3])
def test_els_matches_a_direct_loop(p: int) -> None:
    data, x = _images(3, 2, 4, 4, seed=7), _images(2, 2, 4, 4, seed=8)
    for t in (0.2, 1.5):
        els = EquivariantLocalScore(data, patch=p, precision="float64", max_chunk_bytes=4000, query_rows=7)
        assert torch.allclose(els.denoise(x, t), _loop_els(data, x, t, p), atol=1e-10)


def test_els_subsampled_bank_is_the_weighted_loop_over_the_kept_patches() -> None:
    # images with a blank (background) region, so that both strata are populated
    data, x, t, p = _images(3, 1, 6, 6, seed=9), _images(1, 1, 6, 6, seed=10), 0.4, 3
    data[:, :, :, :3] = data.min()
    els = EquivariantLocalScore(data, patch=p, bank_size=20, seed=3, precision="float64")
    bank_p = els.bank(p)
    assert els.bank_patches == 20 and bank_p.positions.numel() == 20
    blank = els.blank(p)
    kept_blank = blank[bank_p.positions]
    # BLANK_SHARE of the bank is blank; each kept patch stands for N_s / m_s: the weights count every patch
    assert int(kept_blank.sum()) == 2
    assert torch.exp(bank_p.log_weights).sum().item() == pytest.approx(3 * 36)
    assert torch.exp(bank_p.log_weights[kept_blank]).sum().item() == pytest.approx(int(blank.sum()))
    decay, dt = math.exp(-t), float(delta_t(t))
    where = [(k // 36, (k % 36) // 6, k % 6) for k in bank_p.positions.tolist()]  # (image, row, column)
    bank = [(_window(data[m], i, j, p), data[m, :, i, j]) for m, i, j in where]
    want = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    for i in range(6):
        for j in range(6):
            q = _window(x[0], i, j, p)
            logits = torch.stack([-((q - decay * a) ** 2).sum() / (2 * dt) for a, _ in bank])
            wts = torch.softmax(logits + bank_p.log_weights, 0)
            want[0, :, i, j] = (wts[:, None] * torch.stack([c for _, c in bank])).sum(0)
    assert torch.allclose(els.denoise(x, t), want, atol=1e-10)


def test_blank_patches_are_all_background_inside_the_image() -> None:
    data = torch.zeros(1, 1, 5, 5, dtype=torch.float64) - 0.1
    data[0, 0, 0, 0] = 0.9  # one stroke pixel in the corner
    els = EquivariantLocalScore(data, patch=3)
    blank = els.blank(3).reshape(5, 5)
    # windows touching (0, 0) are not blank; every other window (padding included) is
    assert not blank[:2, :2].any() and blank[2:, :].all() and blank[:, 2:].all()


def test_els_is_translation_equivariant_away_from_the_border() -> None:
    # the bank does not depend on x, so a pixel whose window (in x and in the shifted x) lies inside the
    # image and away from the wrapped rows/columns gets the same posterior: exact equivariance there
    data, x, p = _images(4, 1, 10, 10, seed=11), _images(2, 1, 10, 10, seed=12), 3
    els = EquivariantLocalScore(data, patch=p, precision="float64")
    s1, s2, r = 2, 1, p // 2
    shifted = torch.roll(x, shifts=(s1, s2), dims=(2, 3))
    for t in (0.1, 1.0):
        out, out_shifted = els(x, t), els(shifted, t)
        rows, cols = slice(r, 10 - r - s1), slice(r, 10 - r - s2)
        moved = out_shifted[:, :, r + s1:10 - r, r + s2:10 - r]
        assert torch.allclose(moved, out[:, :, rows, cols], rtol=1e-10, atol=1e-10)
        # and at the border it is not: the zero padding is not translated with the image
        assert not torch.allclose(out_shifted[:, :, s1, s2], out[:, :, 0, 0], atol=1e-6)


def test_els_mixed_precision_close_to_float64() -> None:
    data, x = _images(6, 1, 8, 8, seed=13), _images(2, 1, 8, 8, seed=14)
    for t in (0.05, 0.8):
        ref = EquivariantLocalScore(data, patch=5, precision="float64").denoise(x, t)
        fast = EquivariantLocalScore(data, patch=5)
        assert fast.uses_float32(torch.randn(4, 25, dtype=torch.float64), t, 5)
        assert torch.allclose(fast.denoise(x, t), ref, atol=1e-4)


def test_score_form_and_shape() -> None:
    data = _images(6, 1, 6, 6, seed=15)
    x = _images(2, 1, 6, 6, seed=16).to(torch.float32).reshape(2, 36)
    for machine in (LocalScore(data, patch=3), EquivariantLocalScore(data, patch=3)):
        f = machine(x, 0.3)
        assert f.shape == x.shape and f.dtype == torch.float32
        mean = machine.denoise(x, 0.3).reshape(2, 36)
        want = (math.exp(-0.3) * mean - x.double()) / float(delta_t(0.3))
        assert torch.allclose(f.double(), want, rtol=1e-5, atol=1e-4)


def test_patch_schedule() -> None:
    sched = PatchSchedule(times=(0.1, 1.0), sizes=(3, 9))
    assert sched(0.05) == 3 and sched(0.2) == 3 and sched(0.5) == 9 and sched(5.0) == 9
    assert PatchSchedule.constant(7)(0.3) == 7
    with pytest.raises(ConfigError, match="odd"):
        PatchSchedule(times=(1.0,), sizes=(4,))
    with pytest.raises(ConfigError, match="ascending"):
        PatchSchedule(times=(1.0, 0.5), sizes=(3, 5))
    with pytest.raises(ValueError, match="singular"):
        LocalScore(_images(2, 1, 4, 4, seed=0), patch=3)(torch.zeros(1, 16), 0.0)


def test_online_softmax_values_average_other_columns() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    a = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    v = torch.randn(9, 2, generator=gen, dtype=torch.float64)
    bias = torch.randn(9, generator=gen, dtype=torch.float64)
    _, s, vec = online_softmax(x, a, alpha=0.7, bias=bias, cols=4, weighted_mean=True, values=v)
    w = torch.softmax(0.7 * x @ a.T + bias, dim=1)
    assert torch.allclose(vec / s[:, None], w @ v, atol=1e-12)
