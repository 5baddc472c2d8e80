"""UNet throughput: training steps/s and sampling network calls/s, against the same-run matmul rate.

For each preset: network FLOPs per image (forward, and forward + backward for a training step) counted
with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, linear layers and attention matmuls;
normalisation and element-wise work count zero FLOPs, so a low ratio there means time spent off the
matmul units); training steps/s (one full step as the training loop runs it: batch gathering, loss,
backward, Adam, EMA update); sampling network calls/s through ``NoisePredictorScore`` (the adapter of
every sweep, micro-batches of 64 on a CPU) for a batch of 256 images; and the achieved FLOP rate as a
fraction of the float32 matmul rate measured in the same run (benchmarks/baseline.py).

The default preset (the one ``config/config.yaml`` selects, at its batch size) is measured in its layout
variants (contiguous / channels-last, Adam ``foreach`` / ``fused``, optionally ``torch.compile`` with its
compile time) and profiled per layer kind with ``torch.profiler``: where one training step and one
sampling call spend their time (convolutions, GroupNorm, attention, the time embedding, element-wise
work, optimizer, EMA update, data loading).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_regimes import runtime
from diffusion_regimes.benchmarks.baseline import best_time, matmul_gflops
from diffusion_regimes.config import load_yaml
from diffusion_regimes.schedule import DDPMSchedule
from diffusion_regimes.score import NoisePredictorScore
from diffusion_regimes.train import batch_indices, ddpm_loss
from diffusion_regimes.unet import UNet, count_parameters, preset

DEFAULT_CONFIG = Path("config/config.yaml")
SAMPLE_BATCH = 256  # images per sampling call (a sweep's batch), cut into micro-batches by the adapter


def _default_case() -> tuple[str, int]:
    """(preset, batch size) of the default workflow: read from config/config.yaml when run in the repo."""
    if DEFAULT_CONFIG.exists():
        cfg = load_yaml(DEFAULT_CONFIG)
        unet, train = cfg.get("unet", {}), cfg.get("train", {})
        return str(unet.get("preset", "small")), int(train.get("batch_size", 32))
    return "small", 32


def _flops(model: torch.nn.Module, x: torch.Tensor, k: torch.Tensor, *, backward: bool) -> float:
    with FlopCounterMode(display=False) as counter:
        out = model(x, k)
        if backward:
            out.square().mean().backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


@dataclass
class _Setup:
    """One training configuration: model, EMA copy, optimizer, data and a step closure."""

    model: UNet
    step: Callable[[int], None]
    forward: Callable


def _setup(name: str, *, channels: int, image: int, batch: int, device: torch.device,
           channels_last: bool = False, adam: str = "foreach", compile_model: bool = False,
           profile_labels: bool = False) -> _Setup:
    torch.manual_seed(0)
    model = UNet(preset(name, in_channels=channels, image_size=image)).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    ema = copy.deepcopy(model).requires_grad_(False)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    opt = torch.optim.Adam(params, lr=1e-4, foreach=adam == "foreach", fused=adam == "fused")
    gen = torch.Generator(device=device).manual_seed(0)
    data = torch.randn(1000, channels, image, image, device=device, generator=gen)
    data = data.contiguous(memory_format=fmt)
    alpha_bar = DDPMSchedule().alpha_bar.to(device)
    forward = torch.compile(model) if compile_model else model

    def label(text: str):
        return torch.profiler.record_function(text) if profile_labels else _nothing()

    def step(s: int) -> None:
        with label("data loading"):
            images = data[batch_indices(s, n=data.shape[0], batch_size=batch, seed=0).to(device)]
        loss = ddpm_loss(forward, images, alpha_bar=alpha_bar, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with label("optimizer"):
            opt.step()
        with label("EMA update"):
            torch._foreach_lerp_(ema_params, params, 0.001)

    model.train()
    return _Setup(model=model, step=step, forward=forward)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _train_seconds(setup: _Setup, *, repeats: int, steps: int) -> float:
    """Best seconds per training step over ``repeats`` runs of ``steps`` consecutive steps."""
    counter = iter(range(10**9))

    def run() -> None:
        for _ in range(steps):
            setup.step(next(counter))

    return best_time(run, repeats=repeats, warmup=1) / steps


def _sample_seconds(model: torch.nn.Module, *, channels: int, image: int, device: torch.device,
                    repeats: int, channels_last: bool = False, micro_batch: int | None = None) -> float:
    """Best seconds of one score evaluation on ``SAMPLE_BATCH`` images (= SAMPLE_BATCH network calls)."""
    model.eval()
    schedule = DDPMSchedule()
    score = NoisePredictorScore(model, image_shape=(channels, image, image), schedule=schedule,
                                micro_batch=micro_batch)
    gen = torch.Generator(device=device).manual_seed(1)
    x = torch.randn(SAMPLE_BATCH, channels, image, image, device=device, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    t = schedule.time_of_step(500)
    seconds = best_time(lambda: score(x, t), repeats=repeats)
    model.train()
    return seconds


# --- per-layer profile ----------------------------------------------------------------------------------
_LABELS = ("data loading", "optimizer", "EMA update")


def _category(name: str) -> str:
    low = name.lower()
    if "conv" in low:
        return "convolutions"
    if "group_norm" in low:
        return "GroupNorm"
    if "attention" in low or "softmax" in low or "bmm" in low:
        return "attention"
    if low in ("aten::sin", "aten::cos", "aten::exp", "aten::addmm", "aten::mm", "aten::linear")\
            or "addmm" in low:
        return "time embedding"
    if "mse_loss" in low or "randn" in low or "randint" in low or "index" in low:
        return "loss + noise"
    return "element-wise (SiLU, adds, skips, up/down)"


def _profile(fn: Callable[[], None], *, repeats: int) -> dict[str, float]:
    """Self CPU seconds per call of ``fn`` by category; ops under a labelled range go to that label."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            fn()
    totals: dict[str, float] = defaultdict(float)
    for event in prof.events():
        if event.name in _LABELS or event.name.startswith("ProfilerStep"):
            continue
        parent, owner = event.cpu_parent, None
        while parent is not None:
            if parent.name in _LABELS:
                owner = parent.name
            parent = parent.cpu_parent
        if owner is None and event.name.startswith("Optimizer."):
            owner = "optimizer"
        totals[owner or _category(event.name)] += event.self_cpu_time_total / 1e6 / repeats
    return totals


def _profile_table(name: str, *, channels: int, image: int, batch: int, device: torch.device,
                   steps: int) -> None:
    setup = _setup(name, channels=channels, image=image, batch=batch, device=device, profile_labels=True)
    counter = iter(range(10**9))
    setup.step(next(counter))  # warm-up
    train = _profile(lambda: setup.step(next(counter)), repeats=steps)
    setup.model.eval()
    score = NoisePredictorScore(setup.model, image_shape=(channels, image, image))
    x = torch.randn(SAMPLE_BATCH, channels, image, image, device=device)
    t = DDPMSchedule().time_of_step(500)
    score(x, t)
    sample = _profile(lambda: score(x, t), repeats=2)
    rows = sorted(set(train) | set(sample), key=lambda r: -(train.get(r, 0.0) + sample.get(r, 0.0)))
    t_total, s_total = sum(train.values()), sum(sample.values())
    print(f"\nprofile of `{name}` (torch.profiler self CPU time; training: one step of batch {batch}, "
          f"{steps} steps averaged; sampling: one score call on {SAMPLE_BATCH} images)")
    print(f"| {'layer kind':42s} | training ms/step | share | sampling ms/call | share |")
    print(f"|{'-' * 44}|-----------------:|------:|-----------------:|------:|")
    for row in rows:
        tr, sa = train.get(row, 0.0), sample.get(row, 0.0)
        print(f"| {row:42s} | {tr * 1e3:16.1f} | {tr / t_total:5.1%} | {sa * 1e3:16.1f} "
              f"| {sa / s_total:5.1%} |")
    print(f"| {'total (profiled)':42s} | {t_total * 1e3:16.1f} |       | {s_total * 1e3:16.1f} |       |")


def run(args: argparse.Namespace) -> None:
    device = runtime.resolve_device("auto")
    gpu = device.type == "cuda"
    size = 1024 if args.quick else args.size
    peak = matmul_gflops(size=size, device=device.type)
    print(f"device {device}, {torch.get_num_threads()} threads; float32 matmul {size}^3: {peak:.1f} GFLOP/s")
    default, default_batch = _default_case()
    repeats = 2 if args.quick else 3
    steps = 3 if args.quick else 10
    # (preset, channels, size, batch, variants): the default workflow's network in its layout variants,
    # the former default and the paper network (CIFAR-10 size; a token batch on a CPU).
    variants = [("contiguous, foreach Adam", {}), ("channels-last", {"channels_last": True}),
                ("fused Adam", {"adam": "fused"})]
    if getattr(args, "compile", False):
        variants.append(("torch.compile", {"compile_model": True}))
    cases = [(default, 1, 32, default_batch, variants)]
    for other in ("digits", "small"):
        if other != default:
            cases.append((other, 1, 32, 64, variants[:1]))
    cases.append(("paper", 3, 32, 128 if gpu else 2, variants[:1]))
    for name, channels, image, batch, kinds in cases:
        paper_on_cpu = name == "paper" and not gpu
        model = UNet(preset(name, in_channels=channels, image_size=image)).to(device)
        gen = torch.Generator(device=device).manual_seed(0)
        x1 = torch.randn(1, channels, image, image, device=device, generator=gen)
        k1 = torch.full((1,), 500, device=device, dtype=torch.long)
        fwd = _flops(model, x1, k1, backward=False)
        train_flops = _flops(model, x1, k1, backward=True)
        print(f"\n{name}: {count_parameters(model) / 1e6:.3f} M parameters at {channels}x{image}x{image}; "
              f"{fwd / 1e9:.4f} GFLOP forward, {train_flops / 1e9:.4f} GFLOP forward+backward per image")
        for label, options in kinds:
            # the baseline right next to each measurement: on a shared machine the matmul rate itself
            # moves by 3x within minutes, and a ratio is only meaningful against the rate of its moment
            peak = matmul_gflops(size=size, device=device.type)
            print(f"  float32 matmul now: {peak:.1f} GFLOP/s")
            start = time.perf_counter()
            setup = _setup(name, channels=channels, image=image, batch=batch, device=device, **options)
            first = time.perf_counter()
            setup.step(0)
            first = time.perf_counter() - first
            per_step = _train_seconds(setup, repeats=repeats, steps=1 if paper_on_cpu else steps)
            train_rate = batch * train_flops / per_step / 1e9
            extra = f"; first step {first:.1f} s (compile)" if options.get("compile_model") else ""
            print(f"  [{label}] training batch {batch:3d}: {1 / per_step:6.2f} steps/s, "
                  f"{batch / per_step:6.0f} images/s, {train_rate:6.1f} GFLOP/s = {train_rate / peak:.2f} x "
                  f"matmul{extra}")
            if paper_on_cpu:
                continue
            sampler = setup.forward if options.get("compile_model") else setup.model
            per_call = _sample_seconds(sampler, channels=channels, image=image, device=device,
                                       repeats=repeats, channels_last=bool(options.get("channels_last")))
            sample_rate = SAMPLE_BATCH * fwd / per_call / 1e9
            print(f"  [{label}] sampling batch {SAMPLE_BATCH}: {SAMPLE_BATCH / per_call:6.0f} network "
                  f"calls/s (images/s per step), {sample_rate:6.1f} GFLOP/s = "
                  f"{sample_rate / peak:.2f} x matmul; "
                  f"setup {time.perf_counter() - start:.1f} s")
        if name == default and not gpu:
            # the adapter's CPU micro-batch (score.CPU_MICRO_BATCH) against its neighbours
            for micro in (16, 32, 64, 128):
                peak = matmul_gflops(size=size, device=device.type)
                per_call = _sample_seconds(setup.model, channels=channels, image=image, device=device,
                                           repeats=repeats, micro_batch=micro)
                sample_rate = SAMPLE_BATCH * fwd / per_call / 1e9
                print(f"  [micro-batch {micro:3d}] sampling batch {SAMPLE_BATCH}: "
                      f"{SAMPLE_BATCH / per_call:6.0f} network calls/s, {sample_rate:6.1f} GFLOP/s = "
                      f"{sample_rate / peak:.2f} x matmul")
            # training batch sizes around the default (images/s decide the cost of an epoch)
            for other_batch in sorted({16, 32, 64} - {batch}):
                other = _setup(name, channels=channels, image=image, batch=other_batch, device=device)
                peak = matmul_gflops(size=size, device=device.type)
                per_step = _train_seconds(other, repeats=repeats, steps=steps)
                train_rate = other_batch * train_flops / per_step / 1e9
                print(f"  [batch {other_batch:3d}] training: {1 / per_step:6.2f} steps/s, "
                      f"{other_batch / per_step:6.0f} images/s = {train_rate / peak:.2f} x matmul")
    if not gpu:
        _profile_table(default, channels=1, image=32, batch=default_batch, device=device,
                       steps=3 if args.quick else 10)
    print(f"\nfloat32 matmul again: {matmul_gflops(size=size, device=device.type):.1f} GFLOP/s")
