"""UNet throughput: training and sampling images/s of the default and paper presets.

For each preset: network FLOPs per image (forward, and forward + backward for a training step) counted
with ``torch.utils.flop_counter.FlopCounterMode``; training images/s (one Adam step on a batch); sampling
images/s of the 1000-step ancestral sampler (a few real sampler steps through ``run_trajectories``,
extrapolated to 1000); and the achieved FLOP rate as a fraction of the float32 matmul rate measured in
the same run (benchmarks/baseline.py).
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_regimes import runtime
from diffusion_regimes.benchmarks.baseline import best_time, matmul_gflops
from diffusion_regimes.sampler import DDPMAncestral, run_trajectories
from diffusion_regimes.schedule import DDPMSchedule
from diffusion_regimes.score import NoisePredictorScore
from diffusion_regimes.train import ddpm_loss
from diffusion_regimes.unet import UNet, count_parameters, preset

# (preset, channels, size): the default CPU run (MNIST digits), the former default and the paper network
# (CIFAR-10 size).
CASES = (("digits", 1, 32), ("small", 1, 32), ("paper", 3, 32))


def _flops(model: UNet, x: torch.Tensor, k: torch.Tensor, *, backward: bool) -> float:
    with FlopCounterMode(display=False) as counter:
        out = model(x, k)
        if backward:
            out.square().mean().backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def run(args: argparse.Namespace) -> None:
    device = runtime.resolve_device("auto")
    gpu = device.type == "cuda"
    size = 1024 if args.quick else args.size
    peak = matmul_gflops(size=size, device=device.type)
    print(f"device {device}, {torch.get_num_threads()} threads; float32 matmul {size}^3: {peak:.1f} GFLOP/s")
    schedule = DDPMSchedule()
    alpha_bar = schedule.alpha_bar.to(device)
    for name, channels, image in CASES:
        paper_on_cpu = name == "paper" and not gpu
        train_batch = 128 if gpu else (2 if paper_on_cpu else 64)
        sample_batch = 2 if paper_on_cpu else 256
        sample_steps = 10 if gpu else (2 if paper_on_cpu or args.quick else 5)
        repeats = 2 if (paper_on_cpu or args.quick) else 3
        cfg = preset(name, in_channels=channels, image_size=image)
        model = UNet(cfg).to(device)
        gen = torch.Generator(device=device).manual_seed(0)
        x1 = torch.randn(1, channels, image, image, device=device, generator=gen)
        k1 = torch.full((1,), 500, device=device, dtype=torch.long)
        fwd = _flops(model, x1, k1, backward=False)
        train_flops = _flops(model, x1, k1, backward=True)

        data = torch.randn(train_batch, channels, image, image, device=device, generator=gen)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def train_step(model=model, data=data, gen=gen, opt=opt) -> None:
            loss = ddpm_loss(model, data, alpha_bar=alpha_bar, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        model.train()
        t_train = best_time(train_step, repeats=repeats)
        train_ips = train_batch / t_train

        model.eval()
        score = NoisePredictorScore(model, image_shape=(channels, image, image), schedule=schedule)
        xs = torch.randn(sample_batch, channels, image, image, device=device, generator=gen)
        integrator = DDPMAncestral(schedule)

        def sample_run(xs=xs, integrator=integrator, score=score, gen=gen, sample_steps=sample_steps):
            return run_trajectories(xs, integrator=integrator, score=score, generator=gen, stop=sample_steps)

        t_sample = best_time(sample_run, repeats=repeats)
        per_step = t_sample / sample_steps
        sample_ips = sample_batch / (per_step * schedule.n_steps)

        train_rate = train_ips * train_flops / 1e9
        sample_rate = sample_batch * fwd / per_step / 1e9
        print(f"\n{name}: {count_parameters(model) / 1e6:.3f} M parameters at {channels}x{image}x{image}; "
              f"{fwd / 1e9:.3f} GFLOP forward, {train_flops / 1e9:.3f} GFLOP forward+backward per image")
        print(f"  training  batch {train_batch:4d}: {t_train:.3f} s/step = {1 / t_train:.3f} steps/s, "
              f"{train_ips:.1f} images/s, {train_rate:.1f} GFLOP/s = {train_rate / peak:.2f} x matmul")
        print(f"  sampling  batch {sample_batch:4d}: {per_step * 1e3:.1f} ms/network call = "
              f"{sample_batch / per_step:.0f} network evaluations/s, "
              f"{sample_ips:.3f} images/s (1000 ancestral steps), "
              f"{sample_rate:.1f} GFLOP/s = {sample_rate / peak:.2f} x matmul")
