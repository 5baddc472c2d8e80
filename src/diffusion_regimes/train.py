"""Resumable DDPM training of the noise-predicting UNet (docs/science.md section 6).

Loss: ``E || xi - xi_theta(sqrt(alpha_bar(k)) a + sqrt(1 - alpha_bar(k)) xi, k) ||^2`` with ``k`` uniform
in ``1..L`` on the 1000-step linear schedule (docs/science.md section 1), Adam, all n images, no
augmentation.  Steps count optimiser steps.  The learning rate is constant (the paper's choice) or a linear
warm-up followed by a cosine decay (:func:`learning_rate`); the optional EMA of the weights warms up as
``min(ema_decay, (1 + s) / (10 + s))`` (:func:`ema_decay_at`).  Both are pure functions of the step, so
nothing about them needs checkpointing.

Reproducibility (docs/architecture.md principle 2): the batch of step ``s`` is a pure function of
``(seed, s)`` (epoch-wise permutations drawn from a generator seeded by ``(seed, epoch)``); the noise and
the steps ``k`` come from one explicit generator whose state is checkpointed together with the global
torch RNG (dropout) and the optimiser.  A run resumed from any checkpoint therefore reaches the same
weights, bit for bit on a CPU, as an uninterrupted run.

Checkpoints live in ``run_dir/<key>/ckpt-XXXXXXXX.pt`` where ``key`` hashes everything that changes the
trajectory of training except its length (architecture, learning rate, batch size, EMA, seed, data):
a changed config starts a fresh run, a longer ``steps`` continues the old one.  With a decaying learning
rate the schedule depends on ``steps`` itself, so ``steps`` joins the key: a longer cosine run starts afresh.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from diffusion_regimes.checkpoints import (
    CorruptCheckpointError,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
)
from diffusion_regimes.config import to_dict
from diffusion_regimes.errors import ConfigError, TrainingError
from diffusion_regimes.provenance import atomic_path, provenance_record, save_torch, write_sidecar
from diffusion_regimes.sampler import DDPMAncestral, run_trajectories
from diffusion_regimes.schedule import DDPMSchedule
from diffusion_regimes.score import NoisePredictorScore
from diffusion_regimes.seeds import derived_seed
from diffusion_regimes.unet import UNet, UNetConfig

log = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "cosine")
LOSS_LOG = "loss.csv"
LOSS_COLUMNS = ("step", "loss", "images_per_s", "elapsed_s")
"""Columns of the training loss log (and of results/tables/ddpm_loss_<dataset>.csv)."""


@dataclass(frozen=True)
class TrainConfig:
    """Config section ``train`` (config/README.md explains every key)."""

    steps: int = 600
    batch_size: int = 64
    batch_size_by_dataset: dict[str, int] = field(default_factory=dict)  # paper: 64 for LSUN
    lr: float = 1e-4  # peak Adam learning rate (the constant one when lr_schedule is "constant")
    lr_schedule: str = "constant"  # "constant" or "cosine" (decay from lr to lr_min over the run)
    lr_warmup: int = 0  # steps of linear warm-up from lr / lr_warmup to lr
    lr_min: float = 0.0  # learning rate reached at the last step of a cosine schedule
    checkpoint_every: int = 300
    keep_checkpoints: int = 2
    # Extra checkpoints at these optimiser steps, never pruned by keep_checkpoints (the memorisation
    # stage's log-spaced grid); they do not change the trajectory, so they stay out of the run key.
    checkpoint_steps: tuple[int, ...] = ()
    log_every: int = 10
    ema_decay: float = 0.0  # 0 disables the exponential moving average of the weights
    ema_warmup: bool = True  # decay min(ema_decay, (1 + s) / (10 + s)) at step s: forget the random init
    grid_images: int = 8  # samples drawn (1000 ancestral steps) for the grid at every checkpoint
    bf16: bool = False  # GPU only: bfloat16 autocast of the network
    channels_last: bool = False  # GPU only: NHWC memory layout
    compile: bool = False  # GPU only: torch.compile of the training forward pass
    # Workflow-only key (which subsets); it does not change the training.  Threads, memory and runtime
    # live in the config's `resources:` section.
    datasets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"train.lr_schedule: {self.lr_schedule!r} is not valid; choose one of {list(LR_SCHEDULES)}"
            )
        if self.lr_warmup < 0:
            raise ConfigError(f"train.lr_warmup must be >= 0, got {self.lr_warmup}")
        if self.lr_min < 0 or (self.lr_schedule == "cosine" and self.lr_min > self.lr):
            raise ConfigError(f"train.lr_min must lie in [0, train.lr = {self.lr}], got {self.lr_min}")
        if any(int(s) < 1 for s in self.checkpoint_steps):
            raise ConfigError(f"train.checkpoint_steps must be optimiser steps >= 1, got "
                              f"{list(self.checkpoint_steps)}")

    def batch_size_for(self, dataset: str) -> int:
        return int(self.batch_size_by_dataset.get(dataset, self.batch_size))


@dataclass(frozen=True)
class TrainResult:
    model: UNet  # trained weights (eval mode)
    ema: UNet | None  # EMA weights when enabled (eval mode)
    step: int
    run_dir: Path  # the folder holding checkpoints and the loss log
    checkpoint: Path  # the newest checkpoint (step == ``step``)
    resumed_from: int  # 0 for a fresh run


def batch_indices(step: int, *, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """Indices ``(batch_size,)`` of the images in optimiser step ``step`` (0-based).

    The data stream is the concatenation of per-epoch permutations of ``range(n)``, epoch ``e`` drawn from
    a CPU generator seeded by ``(seed, e)``; step ``s`` takes positions ``s B .. (s+1) B - 1`` of that
    stream.  Pure function of its arguments: nothing to carry across a resume.
    """
    pos = torch.arange(step * batch_size, (step + 1) * batch_size)
    epochs, offsets = pos // n, pos % n
    out = torch.empty(batch_size, dtype=torch.long)
    for epoch in torch.unique(epochs).tolist():
        gen = torch.Generator().manual_seed(derived_seed(seed, "epoch", epoch))
        perm = torch.randperm(n, generator=gen)
        sel = epochs == epoch
        out[sel] = perm[offsets[sel]]
    return out


def learning_rate(step: int, *, config: TrainConfig) -> float:
    """Adam learning rate of optimiser step ``step`` (0-based): a pure function, so a resume needs no state.

    Linear warm-up ``lr (step + 1) / lr_warmup`` over the first ``lr_warmup`` steps (Adam's first updates
    are large while its second-moment estimate is still noisy), then ``lr`` held (``constant``) or a
    half-cosine from ``lr`` down to ``lr_min`` at the last step ``steps - 1`` (``cosine``): the late small
    steps average out the batch noise of the weights, which short runs otherwise end on.  A warm-up as long
    as the run (the tiny overlay's 4 steps) simply never reaches the decay.
    """
    if step < config.lr_warmup:
        return config.lr * (step + 1) / config.lr_warmup
    if config.lr_schedule == "constant":
        return config.lr
    span = max(config.steps - 1 - config.lr_warmup, 1)
    progress = min((step - config.lr_warmup) / span, 1.0)
    return config.lr_min + (config.lr - config.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ema_decay_at(step: int, *, config: TrainConfig) -> float:
    """EMA decay used after optimiser step ``step`` (0-based).

    With ``ema_warmup`` the decay is ``min(ema_decay, (1 + s) / (10 + s))`` (the ``num_updates`` warm-up of
    TensorFlow's ExponentialMovingAverage): a constant 0.999 would still give the random initial weights a
    share 0.999^800 = 0.45 of the average after 800 steps, while the warm-up makes the average forget them
    within tens of steps.
    """
    if not config.ema_warmup:
        return config.ema_decay
    return min(config.ema_decay, (1.0 + step) / (10.0 + step))


def ddpm_loss(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    a: torch.Tensor,
    *,
    alpha_bar: torch.Tensor,
    generator: torch.Generator,
    bf16: bool = False,
) -> torch.Tensor:
    """Noise-prediction loss on a batch ``a`` ``(B, C, H, W)``; ``alpha_bar`` ``(L+1,)`` on ``a.device``.

    ``k ~ U{1..L}``, ``xi ~ N(0, I)``, ``x(k) = sqrt(abar) a + sqrt(1 - abar) xi`` (docs/science.md
    section 1).
    """
    n_steps = alpha_bar.numel() - 1
    k = torch.randint(1, n_steps + 1, (a.shape[0],), generator=generator, device=a.device)
    xi = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
    abar = alpha_bar[k].to(a.dtype).view(-1, 1, 1, 1)
    x_k = abar.sqrt() * a + (1.0 - abar).sqrt() * xi
    with torch.autocast(device_type=a.device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = model(x_k, k)
    return F.mse_loss(pred.float(), xi)


@torch.no_grad()
def sample(
    model: nn.Module,
    *,
    n: int,
    shape: tuple[int, int, int],
    generator: torch.Generator,
    schedule: DDPMSchedule | None = None,
    bf16: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """``n`` images ``(n, C, H, W)`` by ancestral DDPM sampling from pure noise (``model`` in eval mode)."""
    schedule = schedule or DDPMSchedule()
    device = next(model.parameters()).device
    x = torch.randn((n, *shape), generator=generator, device=device)
    score = NoisePredictorScore(model, image_shape=tuple(shape), schedule=schedule, autocast_bf16=bf16)
    return run_trajectories(x, integrator=DDPMAncestral(schedule), score=score, generator=generator,
                            progress=progress)


def run_key(*, model_config: UNetConfig, config: TrainConfig, batch_size: int, seed: int,
            images: torch.Tensor) -> str:
    """Hash of everything that determines the training trajectory except its length."""
    data_hash = hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    key = {
        "unet": to_dict(model_config),
        "lr": config.lr,
        "batch_size": batch_size,
        "ema_decay": config.ema_decay,
        "seed": seed,
        "data": [list(images.shape), data_hash],
        "schedule": to_dict(DDPMSchedule()),
        "bf16": config.bf16,
    }
    # Keys added after the first release join the hash only when they change training, so runs of
    # older configs keep their folder and resume.  A decaying schedule depends on ``steps``.
    if config.lr_schedule != "constant" or config.lr_warmup:
        key["lr_schedule"] = [config.lr_schedule, config.lr_warmup, config.lr_min]
        if config.lr_schedule != "constant":
            key["steps"] = config.steps
    if config.ema_decay > 0 and config.ema_warmup:
        key["ema_warmup"] = True
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _rng_state(device: torch.device, noise_gen: torch.Generator) -> dict:
    return {
        "torch_cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "noise": noise_gen.get_state(),
    }


def _set_rng_state(state: dict, device: torch.device, noise_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch_cpu"].cpu())
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    noise_gen.set_state(state["noise"].cpu())


def _truncate_loss_log(path: Path, step: int) -> None:
    """Drop loss rows logged after ``step`` (a killed run may have logged past its last checkpoint)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    kept = lines[:1] + [ln for ln in lines[1:] if ln and int(ln.split(",")[0]) <= step]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(kept) + "\n")


def _resume_point(run_dir: Path, *, steps: int, device: torch.device) -> tuple[int, Path | None, dict | None]:
    """``(step, path, checkpoint)`` to continue from toward ``steps``; ``(0, None, None)`` for a fresh run.

    A truncated or corrupt checkpoint is renamed ``*.corrupt`` (kept for inspection, never deleted) and
    the previous complete one is used.  Checkpoints beyond ``steps`` (``train.steps`` lowered) are never
    deleted: the checkpoint at exactly ``steps`` is used when it is kept, otherwise training refuses,
    since training a shorter run beside them would mix two trajectories in one folder.
    """
    found = list_checkpoints(run_dir)
    later = [s for s, _ in found if s > steps]
    if later and steps not in {s for s, _ in found}:
        kept = ", ".join(str(s) for s, _ in found)
        raise TrainingError(
            f"train.steps = {steps} is below the newest checkpoint (step {later[-1]}) in {run_dir}, and no "
            f"checkpoint is kept at step {steps} (kept: {kept}). Nothing was changed. Set train.steps to a "
            f"kept step or >= {later[-1]}, or move {run_dir} away to train a fresh shorter run."
        )
    for step, path in reversed([(s, p) for s, p in found if s <= steps]):
        try:
            return step, path, load_checkpoint(path, device=device)
        except CorruptCheckpointError as exc:
            if step == steps and later:
                raise CorruptCheckpointError(
                    f"{exc}; it is the checkpoint at train.steps = {steps}, below newer ones, so there is "
                    "nothing to fall back to: set train.steps to another kept step"
                ) from exc
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            log.warning("%s; moved it to %s and falling back to the previous checkpoint (if any)", exc, aside)
    return 0, None, None


@torch.no_grad()
def _check_probe_loss(model: UNet, probe: torch.Tensor, *, step: int, seed: int, alpha_bar: torch.Tensor,
                      bf16: bool, run_dir: Path) -> None:
    """Refuse to save weights that give a non-finite loss on the probe batch ``probe`` ``(B, C, H, W)``.

    The training losses of an interval are computed *before* each update, so the weights after the last
    update of an interval are otherwise unchecked (an exploding step can leave finite weights that give
    NaN on every batch).  The probe uses its own generator and eval mode (no dropout draw), so it leaves
    every RNG stream of the training untouched and a resumed run stays bit-identical.
    """
    params_finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    loss = float("nan")
    if params_finite:
        was_training = model.training
        model.eval()
        gen = torch.Generator(device=probe.device).manual_seed(derived_seed(seed, "probe"))
        loss = ddpm_loss(model, probe, alpha_bar=alpha_bar, generator=gen, bf16=bf16).item()
        model.train(was_training)
    if not math.isfinite(loss):
        good = list_checkpoints(run_dir)
        kept = f"the last good checkpoint is {good[-1][1]}" if good else "no checkpoint exists yet"
        cause = "some weights are NaN/inf" if not params_finite else "the weights are finite but overflow"
        raise TrainingError(
            f"the weights after step {step} give a non-finite loss on a probe batch ({cause}); they were "
            f"not saved and {kept}. Lower train.lr or check the data."
        )


CheckpointHook = Callable[[int, nn.Module, Path], None]
"""``hook(step, sampling_model, run_dir)`` after every checkpoint (sampling_model: EMA if any, eval mode)."""


def train_ddpm(
    images: torch.Tensor,
    *,
    model_config: UNetConfig,
    config: TrainConfig,
    run_dir: str | Path,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int | None = None,
    on_checkpoint: CheckpointHook | None = None,
    progress: bool = False,
    accelerate_on_cpu: bool = False,
) -> TrainResult:
    """Train (or resume) the UNet on ``images`` ``(n, C, H, W)`` float32 for ``config.steps`` steps.

    Resumes from the newest checkpoint in ``run_dir/<key>`` with step <= ``config.steps``.  A non-finite
    loss raises :class:`TrainingError` before anything is written, so the last checkpoint stays good.
    ``config.bf16``, ``channels_last`` and ``compile`` apply on a GPU only (on a CPU they cost time and
    gain nothing); ``accelerate_on_cpu`` applies them on a CPU too, so tests run those code paths.
    """
    device = torch.device(device)
    if images.ndim != 4:
        raise TrainingError(f"images must have shape (n, C, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    if h != model_config.image_size or w != model_config.image_size or c != model_config.in_channels:
        raise TrainingError(f"images {tuple(images.shape[1:])} do not match the UNet input {model_config}")
    batch_size = batch_size or config.batch_size
    gpu = device.type == "cuda"
    accelerate = gpu or accelerate_on_cpu
    key = run_key(model_config=model_config, config=config, batch_size=batch_size, seed=seed, images=images)
    run_dir = Path(run_dir) / key
    run_dir.mkdir(parents=True, exist_ok=True)
    loss_log = run_dir / LOSS_LOG
    config_record = {"unet": to_dict(model_config), "train": to_dict(config), "seed": seed,
                     "batch_size": batch_size, "key": key}

    fork_devices = [device] if gpu else []
    with torch.random.fork_rng(devices=fork_devices):
        # initial weights and dropout (global RNG); restored from the checkpoint on resume
        torch.manual_seed(derived_seed(seed, "weights-and-dropout"))
        model = UNet(model_config).to(device)  # initialisation from the same seeded global RNG
        ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay > 0 else None
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        noise_gen = torch.Generator(device=device).manual_seed(derived_seed(seed, "noise"))
        alpha_bar = DDPMSchedule().alpha_bar.to(device)

        start, path, ckpt = _resume_point(run_dir, steps=config.steps, device=device)
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            if ema is not None:
                ema.load_state_dict(ckpt["ema"])
            _set_rng_state(ckpt["rng"], device, noise_gen)
            log.info("resuming from %s (step %d of %d)", path, start, config.steps)
        if start < config.steps:
            # Rows past ``start`` come from a killed run and will be logged again; when ``start`` equals
            # the target (a lowered train.steps served by a kept checkpoint) later rows belong to the
            # longer run and stay, and the caller reads only rows <= ``config.steps``.
            _truncate_loss_log(loss_log, start)
        if not loss_log.exists():
            loss_log.write_text(",".join(LOSS_COLUMNS) + "\n")
            write_sidecar(loss_log, config=config_record, seed=seed)

        if accelerate and config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        forward = torch.compile(model) if (accelerate and config.compile) else model
        data = images.to(device=device, dtype=torch.float32)
        if accelerate and config.channels_last:
            data = data.contiguous(memory_format=torch.channels_last)
        bf16 = accelerate and config.bf16
        ema_params = list(ema.parameters()) if ema is not None else []
        params = list(model.parameters())

        model.train()
        pending: list[torch.Tensor] = []
        t_log = time.perf_counter()
        t0 = t_log
        newest = checkpoint_path(run_dir, start)
        grid_steps = frozenset(int(s) for s in config.checkpoint_steps)
        steps = range(start, config.steps)
        if progress:
            from diffusion_regimes.progress import progress as bar

            steps = bar(steps, desc="train DDPM", unit="step", initial=start, total=config.steps)
        for step in steps:
            idx = batch_indices(step, n=n, batch_size=batch_size, seed=seed).to(device)
            loss = ddpm_loss(forward, data[idx], alpha_bar=alpha_bar, generator=noise_gen, bf16=bf16)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config=config)
            optimizer.step()
            if ema is not None:
                torch._foreach_lerp_(ema_params, params, 1.0 - ema_decay_at(step, config=config))
            pending.append(loss.detach())
            done = step + 1
            at_checkpoint = (done % config.checkpoint_every == 0 or done == config.steps
                             or done in grid_steps)
            if done % config.log_every == 0 or at_checkpoint:
                # One host sync per log interval, not per step.
                losses = torch.stack(pending).float().cpu()
                if not torch.isfinite(losses).all():
                    good = list_checkpoints(run_dir)
                    kept = (f"the last good checkpoint is {good[-1][1]}" if good
                            else "no checkpoint exists yet")
                    raise TrainingError(
                        f"non-finite training loss between steps {done - len(pending) + 1} and {done}; "
                        f"training stopped and {kept}. Check the data for NaN/inf or lower train.lr."
                    )
                now = time.perf_counter()
                rate = len(pending) * batch_size / max(now - t_log, 1e-9)
                with loss_log.open("a") as fh:
                    fh.write(f"{done},{losses.mean().item():.8g},{rate:.4g},{now - t0:.4g}\n")
                pending, t_log = [], now
            if at_checkpoint:
                # The probe batch is this step's batch: its images just gave a finite loss, so a
                # non-finite probe loss can only come from the updated weights.
                _check_probe_loss(model, data[idx], step=done, seed=seed, alpha_bar=alpha_bar, bf16=bf16,
                                  run_dir=run_dir)
                newest = checkpoint_path(run_dir, done)
                save_torch({
                    "step": done,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "rng": _rng_state(device, noise_gen),
                    "config": config_record,
                    "provenance": provenance_record(config=config_record, seed=seed),
                }, newest)
                # Only checkpoints older than the one just written (a later one would have stopped the
                # run in _resume_point), so the newest is never deleted.
                older = [p for s, p in list_checkpoints(run_dir) if s < done and s not in grid_steps]
                for old in older[: max(0, len(older) - (config.keep_checkpoints - 1))]:
                    old.unlink()
                if on_checkpoint is not None:
                    sampler_model = ema if ema is not None else model
                    sampler_model.eval()
                    on_checkpoint(done, sampler_model, run_dir)
                    model.train()
    model.eval()
    if start >= config.steps and not checkpoint_path(run_dir, start).exists():
        raise TrainingError(f"nothing to train and no checkpoint at step {start} in {run_dir}")
    return TrainResult(model=model, ema=ema.eval() if ema is not None else None, step=config.steps,
                       run_dir=run_dir, checkpoint=checkpoint_path(run_dir, config.steps), resumed_from=start)
