"""Arguments shared by every command."""

from __future__ import annotations

import argparse
import contextvars
from typing import Any


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """``--spec`` (JSON config section from the workflow), ``--seed``, ``--device`` and ``--threads``."""
    parser.add_argument("--spec", required=True, help="JSON of the config section (the workflow passes it)")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")


# The headline numbers of the running command (final loss, accuracy, Λ ± SE, t_S, pairs, ...); `main`
# opens a fresh dict per command and logs it as the closing line of the job's log.  A context variable
# rather than an attribute of the parsed arguments: some commands record their arguments as provenance.
JOB_SUMMARY: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("job_summary")


def job_summary() -> dict[str, Any]:
    """The running command's summary fields (a throwaway dict when called outside ``cli.main``)."""
    return JOB_SUMMARY.get({})
