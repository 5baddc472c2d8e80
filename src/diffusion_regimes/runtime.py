"""Execution context: device choice and CPU threads.  The caller picks the device; nothing is hard-coded."""

from __future__ import annotations

import os

import torch

from diffusion_regimes.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name not in DEVICE_CHOICES:
        raise ConfigError(f"device: {name!r} is not valid; choose one of {list(DEVICE_CHOICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but no GPU is visible; set device: auto or cpu")
    return torch.device(name)


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads (default: the cores Snakemake gave us, else all) and return the count."""
    if threads is None:
        threads = int(os.environ.get("SNAKEMAKE_THREADS", 0)) or (os.cpu_count() or 1)
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()
