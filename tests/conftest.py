"""Shared fixtures.  Tests run in float64 where they check numerics against closed forms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _few_threads():
    # CI has 2 cores; keep torch from oversubscribing when pytest runs alongside snakemake jobs.
    torch.set_num_threads(2)
    yield


@pytest.fixture
def repo() -> Path:
    return REPO


def stage_raw_placeholders(work: Path, *configs: Path) -> list[Path]:
    """Empty stand-ins under ``work`` for every raw path the configs' datasets read.

    Raw data are inputs of ``prepare_subset`` (a dry run without them names what is missing), so a dry run
    of the paper configuration needs something at each path: a folder, or an empty file where the path
    names a file (an archive or a label map).  The dry run never opens them.
    """
    import yaml

    from diffusion_regimes.config import build, deep_merge
    from diffusion_regimes.data import DatasetSpec
    from diffusion_regimes.data.freshness import raw_paths

    merged: dict = {}
    for path in configs:
        merged = deep_merge(merged, yaml.safe_load(Path(path).read_text()) or {})
    staged = []
    for name, entry in merged.get("datasets", {}).items():
        for raw in raw_paths(build(DatasetSpec, entry, where=f"datasets.{name}")):
            target = work / raw
            if raw.suffix in (".gz", ".tar", ".txt", ".pth", ".zip"):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
            else:
                target.mkdir(parents=True, exist_ok=True)
            staged.append(target)
    return staged


@pytest.fixture(scope="session")
def raw_placeholders():
    """:func:`stage_raw_placeholders` for module-scoped fixtures (test modules cannot import conftest)."""
    return stage_raw_placeholders
