"""Checkpoints of the DDPM UNet: where they live, how they are listed and loaded (safely), and the denoiser
they hold.  Writing them is the trainer's business (:mod:`diffusion_regimes.train`); every reader (the
sweeps, the report, a user's notebook) goes through this module.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from diffusion_regimes.errors import ConfigError, TrainingError
from diffusion_regimes.unet import UNet, UNetConfig

CHECKPOINT_RE = re.compile(r"^ckpt-(\d{8})\.pt$")

__all__ = ["CHECKPOINT_RE", "CorruptCheckpointError", "checkpoint_path", "list_checkpoints",
           "load_checkpoint", "load_denoiser"]


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"ckpt-{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete checkpoint in ``run_dir``, ascending."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


class CorruptCheckpointError(TrainingError):
    """A checkpoint file exists but cannot be read (truncated by a full disk or a copy, or not one)."""


def load_checkpoint(path: str | Path, *, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's dictionary (tensors on ``device``), loaded with ``weights_only=True``."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError as exc:
        raise TrainingError(f"checkpoint not found: {path}") from exc
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        # torch reports a truncated archive as "PytorchStreamReader failed reading zip archive: ...", then
        # several sentences of advice; the first sentence is the diagnosis.
        reason = str(exc).split(". ")[0].splitlines()[0]
        raise CorruptCheckpointError(f"checkpoint {path} is truncated or corrupt ({reason})") from exc


def load_denoiser(path: str | Path, *, weights: str = "auto", device: torch.device | str = "cpu") -> UNet:
    """The UNet of a checkpoint, in eval mode; ``weights``: ``model``, ``ema`` or ``auto`` (EMA if any)."""
    ckpt = load_checkpoint(path, device=device)
    from diffusion_regimes.config import build

    model = UNet(build(UNetConfig, ckpt["config"]["unet"], where=f"{path}:unet")).to(device)
    if weights not in ("auto", "model", "ema"):
        raise ConfigError(f"weights: {weights!r} is not valid; choose one of ['auto', 'model', 'ema']")
    if weights == "ema" and ckpt.get("ema") is None:
        raise TrainingError(f"{path} holds no EMA weights (train.ema_decay was 0)")
    use_ema = weights == "ema" or (weights == "auto" and ckpt.get("ema") is not None)
    model.load_state_dict(ckpt["ema"] if use_ema else ckpt["model"])
    return model.eval()
