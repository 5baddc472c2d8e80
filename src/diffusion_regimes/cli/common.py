"""Arguments shared by every command."""

from __future__ import annotations

import argparse


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """``--spec`` (JSON config section from the workflow), ``--seed``, ``--device`` and ``--threads``."""
    parser.add_argument("--spec", required=True, help="JSON of the config section (the workflow passes it)")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
