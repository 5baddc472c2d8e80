"""Arguments shared by every command."""

from __future__ import annotations

import argparse
import contextvars
import os
from pathlib import Path
from typing import Any

from diffusion_regimes.errors import ConfigError, DataError, OutputError


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


def ensure_writable(*outputs: Path) -> None:
    """Fail before computing when the folder of an output cannot be created or written.

    Otherwise a long job would be lost at its very end on a ``PermissionError`` about a temporary file.
    """
    for output in outputs:
        folder = Path(output).parent
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder} exists but is not a folder, so {output} cannot be written there; "
                              "move it away and re-run")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {folder} for {output}: {exc.strerror}; "
                              "fix its permissions (or the path) and re-run") from exc
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"the output folder {folder} is not writable (needed for {output}); "
                              "fix its permissions and re-run")


def load_subset(path: str | Path, n: int | None = None):
    """The prepared subset at ``path`` (its first ``n`` images when ``n`` is given), with clear errors."""
    from diffusion_regimes.data import PreparedSubset

    if not Path(path).is_file():
        raise DataError(f"prepared subset not found: {path}; the data stage writes it "
                        f"(rule prepare_subset: snakemake {path})")
    subset = PreparedSubset.load(path)
    return subset if n is None else training_prefix(subset, n, where=path)


def training_prefix(subset, n: int, *, where: str | Path):
    """The first ``n`` images of ``subset`` (loaded from ``where``), with an error naming the config key."""
    if n > subset.n:
        raise ConfigError(f"regimes.n_values: n = {n} exceeds the {subset.n} images of {where}")
    return subset.prefix(n)


def spec_record(text: str) -> Any:
    """The job's ``--spec`` as it was passed: the config keys this job read (its provenance record)."""
    import json

    return json.loads(text)
