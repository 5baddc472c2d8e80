"""Atomic writers: outputs get the permissions the user's umask asks for (issue 11)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from diffusion_regimes.provenance import save_torch, write_json


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_outputs_honour_umask(tmp_path: Path, umask, mask: int, mode: int) -> None:
    # mkstemp alone would give 0600 under every umask: a shared project directory unreadable to others
    umask(mask)
    write_json(tmp_path / "a.json", {"x": 1})
    save_torch({"w": torch.zeros(2)}, tmp_path / "b.pt")
    for name in ("a.json", "b.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    # no temporary file is left beside the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.pt"]
