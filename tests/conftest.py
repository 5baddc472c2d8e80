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
