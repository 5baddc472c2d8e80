"""Provenance and atomic output.

Every table, figure and checkpoint gets a JSON sidecar ``<output>.provenance.json`` holding the resolved
configuration, package version, git commit, seed, host and torch build (docs/architecture.md principle 4).
Outputs are written to a temporary file in the same folder and renamed into place, so an interrupted
run never leaves a half-written file under ``results/``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from diffusion_regimes import __version__

SIDECAR_SUFFIX = ".provenance.json"


def sidecar_path(output: str | Path) -> Path:
    """Path of the provenance sidecar of ``output`` (``fig.pdf`` -> ``fig.pdf.provenance.json``)."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def git_commit(start: str | Path | None = None) -> str:
    """The commit of the source tree (``+dirty`` when it has uncommitted changes), or ``unknown``."""
    here = Path(start) if start is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def provenance_record(*, config: Any, seed: int | None, extra: Mapping[str, Any] | None = None) -> dict:
    """What produced a result: configuration, seed, code version, and the machine."""
    import torch

    record = {
        "package": "diffusion-regimes",
        "version": __version__,
        "git_commit": git_commit(),
        "seed": seed,
        "config": config,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if extra:
        record.update(extra)
    # plain JSON types only: the record is also embedded in checkpoints read with weights_only=True
    return json.loads(json.dumps(record, default=str))


def _current_umask() -> int:
    """The process umask (reading it means setting it; the old value is restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    # mkstemp creates the file with mode 0600 whatever the umask; give the output the mode a plain
    # open() would (0666 minus the umask) so that teammates sharing a project directory can read it.
    os.fchmod(fd, 0o666 & ~_current_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# ``config`` left out: write the file alone (the sidecars themselves, scratch files)
_NO_SIDECAR: Any = object()


def write_json(path: str | Path, data: Any, *, config: Any = _NO_SIDECAR, seed: int | None = None,
               extra: Mapping[str, Any] | None = None) -> None:
    """Atomically write ``data`` as indented JSON; with ``config``, its provenance sidecar too."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    if config is not _NO_SIDECAR:
        write_sidecar(path, config=config, seed=seed, extra=extra)


def save_torch(obj: Any, path: str | Path, *, config: Any = _NO_SIDECAR, seed: int | None = None,
               extra: Mapping[str, Any] | None = None) -> None:
    """Atomic ``torch.save`` (tensors, state dicts, checkpoints): a killed job leaves no truncated file.

    With ``config``, the provenance sidecar is written after the file.  Saved through an open file handle:
    given a path, ``torch.save`` records the (random) temporary file name inside the archive, so equal
    objects would give files with different SHA-256.
    """
    import torch

    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        torch.save(obj, fh)
    if config is not _NO_SIDECAR:
        write_sidecar(path, config=config, seed=seed, extra=extra)


def write_sidecar(
    output: str | Path, *, config: Any, seed: int | None, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write the provenance sidecar of ``output`` and return its path."""
    target = sidecar_path(output)
    write_json(target, provenance_record(config=config, seed=seed, extra=extra))
    return target


def write_table(frame: Any, path: str | Path, *, config: Any, seed: int | None,
                extra: Mapping[str, Any] | None = None) -> None:
    """Atomically write a pandas DataFrame as CSV, with its provenance sidecar."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")
    write_sidecar(path, config=config, seed=seed, extra=extra)
