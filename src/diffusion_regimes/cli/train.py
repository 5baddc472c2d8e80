"""``train-ddpm``: train (or resume) the UNet on a prepared subset; write checkpoint, loss table, figure."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from diffusion_regimes import runtime
from diffusion_regimes.checkpoints import load_checkpoint
from diffusion_regimes.cli.common import add_spec_arguments, ensure_writable, job_summary, load_subset
from diffusion_regimes.config import from_json, to_dict
from diffusion_regimes.lock import folder_lock
from diffusion_regimes.provenance import save_torch, write_sidecar, write_table
from diffusion_regimes.seeds import derived_seed
from diffusion_regimes.train import (
    LOSS_LOG,
    TrainConfig,
    TrainResult,
    sample,
    train_ddpm,
)
from diffusion_regimes.unet import UNetSpec

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-ddpm", help="train the DDPM UNet on a prepared subset (resumes if stopped)")
    add_spec_arguments(p)
    p.add_argument("--unet-spec", required=True, help="JSON of the `unet` config section")
    p.add_argument("--dataset", required=True, help="subset name (a key of `datasets:`)")
    p.add_argument("--subset", required=True, type=Path, help="prepared subset file (subset.pt)")
    p.add_argument("--run-dir", required=True, type=Path, help="checkpoint folder (kept when the job fails)")
    p.add_argument("--checkpoint", required=True, type=Path, help="final weights (.pt)")
    p.add_argument("--loss-table", required=True, type=Path, help="loss log (.csv)")
    p.add_argument("--figure", required=True, type=Path, help="loss + samples figure (.pdf; .png beside it)")
    p.set_defaults(func=run, uses_network=True)


def train_and_report(
    images: torch.Tensor,
    *,
    to_pixels: Callable[[torch.Tensor], torch.Tensor],
    dataset: str,
    unet: UNetSpec,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    run_dir: Path,
    checkpoint: Path,
    loss_table: Path,
    figure: Path,
) -> TrainResult:
    """Train on ``images`` ``(n, C, H, W)`` and write the final checkpoint, loss table and figure."""
    import pandas as pd

    from diffusion_regimes.plots import save_figure
    from diffusion_regimes.plots.ddpm import samples_figure, training_figure

    _, c, h, _ = images.shape
    model_config = unet.resolve(in_channels=c, image_size=h)
    record = {"dataset": dataset, "unet": to_dict(model_config), "train": to_dict(config)}
    shape = (c, h, h)

    def grid_samples(model: torch.nn.Module, step: int, folder: Path) -> torch.Tensor:
        cached = folder / f"samples-{step:08d}.pt"
        if cached.exists():
            return torch.load(cached, weights_only=True)
        # The same starting noise at every checkpoint, so the grids show the model's progress.
        gen = torch.Generator(device=device).manual_seed(derived_seed(seed, "sample-grid"))
        x = sample(model, n=config.grid_images, shape=shape, generator=gen,
                   bf16=device.type == "cuda" and config.bf16, progress=True).cpu()
        save_torch(x, cached, config=record, seed=seed)
        return x

    def on_checkpoint(step: int, model: torch.nn.Module, folder: Path) -> None:
        if config.grid_images < 1:
            return
        x = grid_samples(model, step, folder)
        fig = samples_figure(to_pixels(x), title=f"{dataset}: step {step}")
        save_figure(fig, folder / f"samples-{step:08d}.pdf", config=record, seed=seed)

    batch = config.batch_size_for(dataset)
    ensure_writable(checkpoint, loss_table, figure)
    # Held until the outputs are written: a second trainer (e.g. after `snakemake --unlock` while an
    # orphaned job still runs) refuses instead of interleaving checkpoints and outputs.
    with folder_lock(run_dir):
        result = train_ddpm(images, model_config=model_config, config=config, run_dir=run_dir, seed=seed,
                            device=device, batch_size=batch, on_checkpoint=on_checkpoint, progress=True)

        ckpt = load_checkpoint(result.checkpoint)
        final = {key: ckpt[key] for key in ("step", "model", "ema", "config")}
        save_torch(final, checkpoint)
        write_sidecar(checkpoint, config=record, seed=seed, extra={"run_dir": str(result.run_dir)})

        frame = pd.read_csv(result.run_dir / LOSS_LOG)
    # The log of a longer run (train.steps lowered onto a kept checkpoint) goes past the model's step.
    frame = frame[frame["step"] <= result.step].reset_index(drop=True)
    write_table(frame, loss_table, config=record, seed=seed)

    sampler_model = result.ema if result.ema is not None else result.model
    pixels = torch.zeros(0, *shape)
    if config.grid_images:
        pixels = to_pixels(grid_samples(sampler_model, result.step, result.run_dir))
    fig = training_figure(frame["step"].to_numpy(), frame["loss"].to_numpy(), pixels,
                          title=f"DDPM UNet on {dataset} (n = {images.shape[0]}, batch {batch})")
    save_figure(fig, figure, config=record, seed=seed)
    return result


def run(args: argparse.Namespace) -> int:
    config = from_json(TrainConfig, args.spec, where="train")
    unet = from_json(UNetSpec, args.unet_spec, where="unet")
    runtime.set_threads(args.threads)
    device = runtime.resolve_device(args.device)
    subset = load_subset(args.subset)
    log.info("training on %s: %d images of shape %s, device %s", args.dataset, subset.n,
             tuple(subset.images.shape[1:]), device)
    # the job's seed (config/README.md, "Seeds"): every stream of the training derives from it
    seed = derived_seed(args.seed, "train-ddpm", args.dataset)
    train_and_report(subset.images, to_pixels=subset.to_pixels, dataset=args.dataset, unet=unet,
                     config=config, seed=seed, device=device, run_dir=args.run_dir,
                     checkpoint=args.checkpoint, loss_table=args.loss_table, figure=args.figure)
    import pandas as pd

    losses = pd.read_csv(args.loss_table)
    job_summary().update(dataset=args.dataset, steps=int(losses["step"].iloc[-1]),
                         final_loss=float(losses["loss"].iloc[-1]))
    return 0
