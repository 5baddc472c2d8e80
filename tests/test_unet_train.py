"""UNet shapes and size, and DDPM training: loss decrease, bit-identical resume, NaN guard."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diffusion_regimes.checkpoints import list_checkpoints, load_checkpoint, load_denoiser
from diffusion_regimes.errors import ConfigError, TrainingError
from diffusion_regimes.train import (
    TrainConfig,
    batch_indices,
    ema_decay_at,
    learning_rate,
    run_key,
    sample,
    train_ddpm,
)
from diffusion_regimes.unet import PRESETS, Attention, UNet, UNetConfig, UNetSpec, count_parameters, preset


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny networks: one thread is faster than two on a shared 2-core box (no OpenMP barrier waits).
    torch.set_num_threads(1)
    yield


def _images(n=24, size=16, seed=0):
    # Two "classes" of structured images (a bright square top-left or bottom-right) plus noise.
    gen = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(n, 1, size, size, generator=gen)
    half = size // 2
    x[: n // 2, :, :half, :half] += 1.0
    x[n // 2 :, :, half:, half:] += 1.0
    return x - x.mean(dim=(0, 2, 3), keepdim=True)


TINY16 = preset("tiny", in_channels=1, image_size=16)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_output_shape_equals_input_shape(name):
    channels, size = (3, 32) if name == "paper" else (1, 16)
    model = UNet(preset(name, in_channels=channels, image_size=size)).eval()
    x = torch.randn(1 if name == "paper" else 3, channels, size, size)
    k = torch.randint(1, 1001, (x.shape[0],))
    with torch.no_grad():
        assert model(x, k).shape == x.shape


def test_paper_preset_parameter_count():
    # docs/science.md section 6: "about 25.7 M parameters at 3x32x32"; the issue allows 2 %.
    n = count_parameters(UNet(preset("paper", in_channels=3, image_size=32)))
    assert abs(n - 25.7e6) / 25.7e6 < 0.02
    # The same layout at DDPM's CIFAR-10 settings reproduces DDPM's published 35.7 M (Ho et al. 2020).
    ddpm = UNetConfig(in_channels=3, base_channels=128, channel_mult=(1, 2, 2, 2), attention_levels=(1,))
    assert round(count_parameters(UNet(ddpm)) / 1e5) == 357


def test_paper_preset_is_the_authors_network():
    # Issue 16: the authors' UNet (GroupNorm(8), 4 heads, GELU step MLP, Dropout2d, default init) keeps the
    # trainable count exactly: the head count and init change no parameter shapes.
    config = preset("paper", in_channels=3, image_size=32)
    model = UNet(config)
    assert count_parameters(model) == 25_636_483
    attentions = [m for m in model.modules() if isinstance(m, Attention)]
    assert attentions and all(m.heads == 4 for m in attentions)
    assert isinstance(model.embed[1], torch.nn.GELU)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout | torch.nn.Dropout2d)]
    assert dropouts and all(type(m) is torch.nn.Dropout2d and m.p == 0.1 for m in dropouts)
    assert all(m.num_groups == 8 for m in model.modules() if isinstance(m, torch.nn.GroupNorm))
    # PyTorch default init: no layer starts at zero (the other presets zero these for an identity start)
    assert model.conv_out.weight.abs().sum() > 0 and attentions[0].proj.weight.abs().sum() > 0
    assert UNet(preset("small", in_channels=1, image_size=32)).conv_out.weight.abs().sum() == 0


def test_multi_head_attention_matches_torch_multihead_attention():
    # The 4-head layer is nn.MultiheadAttention (the authors' layer) with the same projections.
    torch.manual_seed(0)
    channels, heads = 16, 4
    ours = Attention(channels, groups=4, heads=heads, zero_init=False).double()
    mha = torch.nn.MultiheadAttention(channels, heads, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(ours.qkv.weight[:, :, 0, 0])
        mha.in_proj_bias.copy_(ours.qkv.bias)
        mha.out_proj.weight.copy_(ours.proj.weight[:, :, 0, 0])
        mha.out_proj.bias.copy_(ours.proj.bias)
        x = torch.randn(2, channels, 4, 4, dtype=torch.float64)
        h = ours.norm(x).reshape(2, channels, 16).transpose(1, 2)
        expected = x + mha(h, h, h)[0].transpose(1, 2).reshape(x.shape)
        # float64 on both sides: only summation-order rounding differs
        torch.testing.assert_close(ours(x), expected, rtol=1e-12, atol=1e-12)


def test_digits_preset_size_and_attention_resolution():
    from diffusion_regimes.unet import Attention

    model = UNet(preset("digits", in_channels=1, image_size=32)).eval()
    # 16 channels at 32x32, 32 at 16x16, 64 at 8x8, two blocks per level (config/README.md quotes it)
    assert count_parameters(model) == 989_217
    sizes = []
    for module in model.modules():
        if isinstance(module, Attention):
            module.register_forward_hook(lambda mod, inp, out: sizes.append(tuple(out.shape[-2:])))
    with torch.no_grad():
        model(torch.randn(2, 1, 32, 32), torch.tensor([1, 1000]))
    # attention only at 8x8 (64 positions): 2 down + middle + 3 up blocks
    assert sizes == [(8, 8)] * 6


def test_local_preset_has_no_normalisation_or_attention():
    from diffusion_regimes.unet import Attention

    model = UNet(preset("local", in_channels=1, image_size=32)).eval()
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.GroupNorm not in kinds and Attention not in kinds
    # digits' layout without its 6 attention layers and GroupNorms: 989 217 - 103 968 parameters
    assert count_parameters(model) == 885_249


def test_spec_overrides_preset():
    cfg = UNetSpec(preset="tiny", dropout=0.3, base_channels=16).resolve(in_channels=3, image_size=8)
    assert (cfg.dropout, cfg.base_channels, cfg.in_channels, cfg.channel_mult) == (0.3, 16, 3, (1, 2))


def test_batches_cover_every_image_once_per_epoch():
    idx = torch.cat([batch_indices(s, n=10, batch_size=5, seed=3) for s in range(4)])
    assert sorted(idx[:10].tolist()) == list(range(10)) and sorted(idx[10:].tolist()) == list(range(10))
    # a batch larger than the data set spans several epochs
    counts = batch_indices(0, n=3, batch_size=7, seed=0).bincount().tolist()
    assert sorted(counts) == [2, 2, 3]


def test_training_loss_decreases(tmp_path):
    cfg = TrainConfig(steps=60, batch_size=8, lr=2e-3, checkpoint_every=60, log_every=10)
    res = train_ddpm(_images(), model_config=TINY16, config=cfg, run_dir=tmp_path, seed=0)
    rows = [line.split(",") for line in (res.run_dir / "loss.csv").read_text().splitlines()[1:]]
    losses = [float(r[1]) for r in rows]
    assert [int(r[0]) for r in rows] == [10, 20, 30, 40, 50, 60]
    # The zero-initialised output layer starts at loss = E xi^2 = 1; 60 Adam steps must learn the two
    # squares well enough to go clearly below (observed ~0.5; a 20 % margin is far above batch noise).
    assert losses[0] > 0.85
    assert losses[-1] < 0.8 * losses[0]


def test_resume_is_bit_identical(tmp_path):
    images = _images()
    base = dict(batch_size=6, lr=1e-3, log_every=2, ema_decay=0.9)
    cfg = TrainConfig(steps=8, checkpoint_every=4, keep_checkpoints=5, **base)
    spec = dataclasses.replace(TINY16, dropout=0.1)  # dropout exercises the global RNG state
    straight = train_ddpm(images, model_config=spec, config=cfg, run_dir=tmp_path / "a", seed=1)

    half = dataclasses.replace(cfg, steps=4)
    first = train_ddpm(images, model_config=spec, config=half, run_dir=tmp_path / "b", seed=1)
    assert first.resumed_from == 0
    resumed = train_ddpm(images, model_config=spec, config=cfg, run_dir=tmp_path / "b", seed=1)
    assert resumed.resumed_from == 4

    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), (part, name)
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        for name in sa:
            assert torch.equal(sa[name], sb[name]), name
    assert torch.equal(a["rng"]["noise"], b["rng"]["noise"])
    # the loss log of the resumed run matches the straight one row for row (losses; not timings)
    loss_a = [r.split(",")[:2] for r in (straight.run_dir / "loss.csv").read_text().splitlines()]
    loss_b = [r.split(",")[:2] for r in (resumed.run_dir / "loss.csv").read_text().splitlines()]
    assert loss_a == loss_b
    # a different seed is a different run: a fresh folder, not a resume
    other = train_ddpm(images, model_config=spec, config=half, run_dir=tmp_path / "b", seed=2)
    assert other.resumed_from == 0 and other.run_dir != resumed.run_dir


def test_learning_rate_warmup_and_cosine_closed_form():
    cfg = TrainConfig(steps=1001, lr=1e-3, lr_schedule="cosine", lr_warmup=100, lr_min=1e-5)
    lrs = [learning_rate(s, config=cfg) for s in range(cfg.steps)]
    # linear warm-up: lr (s + 1) / warmup, reaching lr at the last warm-up step
    assert lrs[0] == pytest.approx(1e-5, rel=1e-12) and lrs[49] == pytest.approx(5e-4, rel=1e-12)
    assert lrs[99] == pytest.approx(1e-3, rel=1e-12) and lrs[100] == pytest.approx(1e-3, rel=1e-12)
    # half-cosine over steps 100..1000: the midpoint (step 550) is the mean of lr and lr_min, the end lr_min
    assert lrs[550] == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-12)
    assert lrs[-1] == pytest.approx(1e-5, rel=1e-12)
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:], strict=False))
    flat = TrainConfig(steps=50, lr=3e-4, lr_warmup=10)
    assert [learning_rate(s, config=flat) for s in (0, 9, 10, 49)] == pytest.approx([3e-5, 3e-4, 3e-4, 3e-4])
    assert learning_rate(7, config=TrainConfig(lr=2e-4)) == 2e-4
    with pytest.raises(ConfigError, match="lr_schedule.*cosine"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ConfigError, match="lr_min"):
        TrainConfig(lr=1e-4, lr_min=1e-3, lr_schedule="cosine")
    TrainConfig(lr=1e-6, lr_min=1e-5)  # a constant rate ignores lr_min (an overlay may lower lr alone)


def test_ema_warmup_decay():
    cfg = TrainConfig(ema_decay=0.999)
    # min(decay, (1 + s) / (10 + s)): 0.1 at the first step, the configured decay once (1+s)/(10+s) exceeds it
    assert ema_decay_at(0, config=cfg) == pytest.approx(0.1)
    assert ema_decay_at(90, config=cfg) == pytest.approx(91 / 100)
    assert ema_decay_at(9000, config=cfg) == 0.999 and ema_decay_at(8900, config=cfg) < 0.999
    assert ema_decay_at(0, config=dataclasses.replace(cfg, ema_warmup=False)) == 0.999


def test_training_applies_lr_schedule_and_ema_warmup(tmp_path):
    cfg = TrainConfig(steps=3, batch_size=4, lr=1e-3, lr_schedule="cosine", lr_warmup=1, lr_min=1e-4,
                      checkpoint_every=1, keep_checkpoints=3, ema_decay=0.99)
    res = train_ddpm(_images(n=8), model_config=TINY16, config=cfg, run_dir=tmp_path, seed=0)
    c2, c3 = (load_checkpoint(p) for _, p in list_checkpoints(res.run_dir)[1:])
    # Adam's stored lr is the one of the step just taken (0-based step 2, the end of the cosine: lr_min)
    assert c3["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4, rel=1e-12)
    assert c2["optimizer"]["param_groups"][0]["lr"] == pytest.approx(learning_rate(1, config=cfg), rel=1e-12)
    # the EMA after step index 2 is lerp(ema_before, weights_after, 1 - d) with d = min(0.99, 3/12)
    d = ema_decay_at(2, config=cfg)
    assert d == pytest.approx(0.25)
    for name, w in c3["model"].items():
        torch.testing.assert_close(c3["ema"][name], d * c2["ema"][name] + (1 - d) * w, rtol=1e-5, atol=1e-7)


def test_resume_after_kill_with_cosine_schedule_is_bit_identical(tmp_path):
    images = _images()
    cfg = TrainConfig(steps=8, batch_size=6, lr=1e-3, lr_schedule="cosine", lr_warmup=3, lr_min=1e-5,
                      checkpoint_every=4, keep_checkpoints=5, log_every=2, ema_decay=0.9)
    straight = train_ddpm(images, model_config=TINY16, config=cfg, run_dir=tmp_path / "a", seed=1)
    killed = train_ddpm(images, model_config=TINY16, config=cfg, run_dir=tmp_path / "b", seed=1)
    killed.checkpoint.unlink()  # as if the job died between the checkpoints at steps 4 and 8
    resumed = train_ddpm(images, model_config=TINY16, config=cfg, run_dir=tmp_path / "b", seed=1)
    assert resumed.resumed_from == 4
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for part in ("model", "ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), (part, name)


def test_run_key_covers_the_schedule():
    images = _images(n=4)

    def key(**kw):
        return run_key(model_config=TINY16, config=TrainConfig(**kw), batch_size=4, seed=0, images=images)

    # a constant learning rate does not depend on the length (a longer run continues the old one) ...
    assert key(steps=10) == key(steps=20)
    # ... a cosine decay does, and every schedule key changes the run
    cosine = dict(lr_schedule="cosine", lr_warmup=2)
    assert key(steps=10, **cosine) != key(steps=20, **cosine)
    assert len({key(), key(lr_warmup=2), key(**cosine), key(lr_min=1e-5, **cosine)}) == 4
    assert key(ema_decay=0.9) != key(ema_decay=0.9, ema_warmup=False)
    assert key() == key(ema_warmup=False)  # without an EMA the warm-up changes nothing


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    images = _images(n=16)
    # Poison an image that first appears in step 3 (0-based 2), after the checkpoint at step 2.
    bad = int(batch_indices(2, n=16, batch_size=4, seed=0)[0])
    images[bad, 0, 0, 0] = float("nan")
    cfg = TrainConfig(steps=6, batch_size=4, checkpoint_every=2, log_every=1)
    with pytest.raises(TrainingError, match="non-finite training loss .* last good checkpoint"):
        train_ddpm(images, model_config=TINY16, config=cfg, run_dir=tmp_path, seed=0)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    ckpts = list_checkpoints(run_dir)
    assert [s for s, _ in ckpts] == [2]
    model = load_denoiser(ckpts[-1][1])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_sampling_runs_the_ancestral_sampler(tmp_path):
    cfg = TrainConfig(steps=2, batch_size=4, checkpoint_every=2)
    seen = []
    res = train_ddpm(_images(n=8), model_config=TINY16, config=cfg, run_dir=tmp_path, seed=0,
                     on_checkpoint=lambda step, model, run_dir: seen.append((step, model.training)))
    assert seen == [(2, False)]
    x = sample(res.model, n=2, shape=(1, 16, 16), generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()


def test_train_and_report_writes_outputs(tmp_path):
    import torch as _torch

    from diffusion_regimes.cli.train import train_and_report
    from diffusion_regimes.provenance import sidecar_path

    cfg = TrainConfig(steps=2, batch_size=4, checkpoint_every=2, log_every=1, grid_images=2)
    out = {"checkpoint": tmp_path / "final.pt", "loss_table": tmp_path / "loss.csv",
           "figure": tmp_path / "fig.pdf"}
    res = train_and_report(_images(n=8), to_pixels=lambda x: x + 0.5, dataset="synthetic",
                           unet=UNetSpec(preset="tiny"), config=cfg, seed=0, device=_torch.device("cpu"),
                           run_dir=tmp_path / "runs", **out)
    for path in [*out.values(), tmp_path / "fig.png"]:
        assert path.exists() and sidecar_path(path).exists(), path
    assert (res.run_dir / "samples-00000002.png").exists()
    model = load_denoiser(out["checkpoint"])
    assert count_parameters(model) == count_parameters(UNet(TINY16))


def test_final_checkpoint_serves_ema_weights(tmp_path):
    from diffusion_regimes.cli.train import train_and_report

    cfg = TrainConfig(steps=3, batch_size=4, lr=1e-2, checkpoint_every=3, log_every=1, grid_images=0,
                      ema_decay=0.5)
    out = {"checkpoint": tmp_path / "final.pt", "loss_table": tmp_path / "loss.csv",
           "figure": tmp_path / "fig.pdf"}
    res = train_and_report(_images(n=8), to_pixels=lambda x: x + 0.5, dataset="synthetic",
                           unet=UNetSpec(preset="tiny"), config=cfg, seed=0, device=torch.device("cpu"),
                           run_dir=tmp_path / "runs", **out)
    served = load_denoiser(out["checkpoint"]).state_dict()
    raw = load_denoiser(out["checkpoint"], weights="model").state_dict()
    # the sweeps load final.pt with the default weights="auto": the EMA, not the last raw weights
    assert all(torch.equal(served[k], v) for k, v in res.ema.state_dict().items())
    assert any(not torch.equal(served[k], raw[k]) for k in served)


@pytest.mark.parametrize("overlay", [None, "tiny.yaml", "paper.yaml"])
def test_configs_validate_and_build(repo, overlay):
    from diffusion_regimes.config import build, deep_merge, load_yaml, validate

    config = load_yaml(repo / "config" / "config.yaml")
    if overlay:
        config = deep_merge(config, load_yaml(repo / "config" / overlay))
    validate(config, repo / "workflow" / "schemas" / "config.schema.yaml")
    build(TrainConfig, config["train"])
    build(UNetSpec, config["unet"]).resolve(in_channels=1, image_size=32)


def test_bf16_and_channels_last_paths_train_and_sample_on_cpu(tmp_path):
    """The GPU settings of config/paper.yaml run here too (accelerate_on_cpu): bfloat16 autocast of the
    network and NHWC layout train to a finite loss close to the float32 one, and the bf16 sampler runs."""
    images = _images()
    cfg = TrainConfig(steps=30, batch_size=8, lr=2e-3, checkpoint_every=30, log_every=10)
    fast = dataclasses.replace(cfg, bf16=True, channels_last=True)
    plain = train_ddpm(images, model_config=TINY16, config=cfg, run_dir=tmp_path / "fp32", seed=0)
    accel = train_ddpm(images, model_config=TINY16, config=fast, run_dir=tmp_path / "bf16", seed=0,
                       accelerate_on_cpu=True)

    def last_loss(result):
        return float((result.run_dir / "loss.csv").read_text().splitlines()[-1].split(",")[1])

    # the same data, noise and initial weights: bf16 rounding (8 mantissa bits) moves the loss by far less
    # than the 0.85 -> ~0.5 the 30 steps learn; 0.1 absolute leaves room for the divergence it accumulates
    assert abs(last_loss(accel) - last_loss(plain)) < 0.1
    convs = [p for p in accel.model.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    x = sample(accel.model, n=2, shape=(1, 16, 16), generator=torch.Generator().manual_seed(0), bf16=True)
    assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()


@pytest.mark.slow
def test_compiled_training_forward_runs_on_cpu(tmp_path):
    """train.compile: torch.compile of the training forward (inductor, C++ on a CPU) gives the eager loss."""
    images = _images(n=8)
    cfg = TrainConfig(steps=2, batch_size=4, checkpoint_every=2, log_every=1)
    eager = train_ddpm(images, model_config=TINY16, config=cfg, run_dir=tmp_path / "eager", seed=0)
    compiled = train_ddpm(images, model_config=TINY16, config=dataclasses.replace(cfg, compile=True),
                          run_dir=tmp_path / "compiled", seed=0, accelerate_on_cpu=True)

    def losses(result):
        rows = (result.run_dir / "loss.csv").read_text().splitlines()[1:]
        return [float(line.split(",")[1]) for line in rows]

    # float32 kernels fused differently: equal to float32 round-off over two steps
    assert losses(compiled) == pytest.approx(losses(eager), rel=1e-4, abs=1e-5)


def test_attention_init_xavier_is_multihead_attentions():
    """The paper preset initialises attention as nn.MultiheadAttention does: Xavier-uniform input
    projection over (3C, C), zero biases; `default` keeps Conv2d's init."""
    assert UNetSpec(preset="paper").resolve(in_channels=3, image_size=32).attention_init == "xavier"
    assert UNetSpec(preset="digits").resolve(in_channels=1, image_size=32).attention_init == "default"
    torch.manual_seed(0)
    c = 256
    ours = Attention(c, groups=8, heads=4, zero_init=False, init="xavier")
    ref = torch.nn.MultiheadAttention(c, 4)
    bound = (6.0 / (c + 3 * c)) ** 0.5
    for w in (ours.qkv.weight.detach().reshape(3 * c, c), ref.in_proj_weight.detach()):
        assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.99 * bound
        assert abs(float(w.std()) - bound / 3 ** 0.5) < 0.01 * bound
    assert not ours.qkv.bias.any() and not ours.proj.bias.any() and not ref.in_proj_bias.any()
    assert abs(float(ours.proj.weight.std()) - float(ref.out_proj.weight.std())) < 0.02 * float(
        ref.out_proj.weight.std())
    plain = Attention(c, groups=8, heads=4, zero_init=False)
    assert plain.qkv.bias.abs().max() > 0 and float(plain.qkv.weight.abs().max()) <= c ** -0.5


def test_checkpoint_steps_are_kept_and_do_not_change_training(tmp_path) -> None:
    """train.checkpoint_steps (the memorisation grid): checkpoints at exactly those steps survive
    keep_checkpoints pruning, and the weights equal those of a run without the extra checkpoints."""
    import torch

    from diffusion_regimes.checkpoints import list_checkpoints
    from diffusion_regimes.train import TrainConfig, train_ddpm
    from diffusion_regimes.unet import preset

    images = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    model_config = preset("tiny", in_channels=1, image_size=8)
    grid = TrainConfig(steps=7, batch_size=4, checkpoint_every=7, keep_checkpoints=1, log_every=1,
                       checkpoint_steps=(1, 2, 5), grid_images=0, lr_warmup=2)
    plain = TrainConfig(steps=7, batch_size=4, checkpoint_every=7, keep_checkpoints=1, log_every=1,
                        grid_images=0, lr_warmup=2)
    a = train_ddpm(images, model_config=model_config, config=grid, run_dir=tmp_path / "a", seed=3)
    b = train_ddpm(images, model_config=model_config, config=plain, run_dir=tmp_path / "b", seed=3)
    assert [s for s, _ in list_checkpoints(a.run_dir)] == [1, 2, 5, 7]
    assert [s for s, _ in list_checkpoints(b.run_dir)] == [7]
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_memorisation_checkpoint_grid_is_log_spaced() -> None:
    from diffusion_regimes.memorisation import MemorisationSpec, checkpoint_grid

    grid = checkpoint_grid(first=100, last=10_000, per_decade=5)
    assert grid[0] == 100 and grid[-1] == 10_000 and len(grid) == 11
    # a longer series only adds checkpoints
    assert set(checkpoint_grid(first=100, last=4000, per_decade=5)) - {4000} <= set(grid)
    ratios = [b / a for a, b in zip(grid, grid[1:], strict=False)]
    assert max(ratios) / min(ratios) < 1.01 and abs(ratios[0] - 10 ** 0.2) < 0.01
    spec = MemorisationSpec(steps_per_image=100.0, min_steps=1000, first_step=50)
    assert spec.last_step(16) == 1600 and spec.last_step(4) == 1000
    config = spec.train_config(16)
    assert config.lr_schedule == "constant" and config.steps == 1600 and config.checkpoint_steps[0] == 50
