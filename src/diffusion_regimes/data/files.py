"""Opening dataset files: regular files only, inside the dataset folder, checked on the opened descriptor.

The folder a config's ``path`` names is the user's choice and is trusted as named; everything found in it
is not.  :func:`open_inside` refuses a FIFO (which would hang the job), a device (``/dev/zero`` reads
forever), a directory or socket, and any file whose real location -- read back from the opened descriptor,
not resolved again by name -- lies outside the dataset folder, so that a link planted in a shared folder
cannot make the pipeline read (and record the checksum of) a file elsewhere.  Tar archives are read member
by member through :func:`tar_members`, bounded by the archive's own size.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from diffusion_regimes.data.checks import printable
from diffusion_regimes.errors import DataError

__all__ = ["descriptor_path", "open_inside", "outside", "read_inside", "sha256", "tar_members"]

# A CIFAR-10 tarball expands 1.14 times (186 MB of batches in 163 MB); a member or the scan before it may
# expand at most this many times the archive's size (plain or gzip tar; no holes).
MAX_TAR_EXPANSION = 16
_KINDS = {stat.S_IFDIR: "directory", stat.S_IFIFO: "FIFO (named pipe)", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device", stat.S_IFSOCK: "socket", stat.S_IFLNK: "symbolic link"}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "special file")


def descriptor_path(fd: int) -> str | None:
    """The path the kernel holds for open descriptor ``fd`` (Linux ``/proc``), or None elsewhere."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def open_inside(path: Path, root: Path | None) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file whose real location lies inside ``root`` (a
    resolved folder; None: only the regular-file check, for a path the config names itself).

    The file is opened without following it into a FIFO's wait or a terminal (O_NONBLOCK, O_NOCTTY); its
    type and location are then checked on the descriptor (``fstat``, ``/proc/self/fd``), so a link swapped
    between a check by name and the open cannot redirect the read.  DataError names ``path``.
    """
    where = printable(str(path), quote=False)
    try:
        named = os.stat(path)  # refuses a FIFO or device before it is ever opened
        if not stat.S_ISREG(named.st_mode):
            raise DataError(f"{where}: is a {_kind(named.st_mode)}, not a regular file; refused")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DataError(f"{where}: not found (or a link to nothing)") from None
    except OSError as exc:
        raise DataError(f"{where}: cannot open ({printable(exc.strerror or exc, quote=False)})") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise DataError(f"{where}: is a {_kind(opened.st_mode)}, not a regular file; refused")
        if root is not None:
            real = descriptor_path(fd)
            if real is None:  # no /proc: resolve by name, then make sure that is the file opened
                real = os.path.realpath(path)
                again = os.stat(real)
                if (again.st_dev, again.st_ino) != (opened.st_dev, opened.st_ino):
                    raise DataError(f"{where}: changed while it was opened; refused")
            if not Path(real).is_relative_to(root):
                raise outside(path, Path(real), root)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def outside(path: Path, real: Path, root: Path) -> DataError:
    """The error for ``path``, whose real location ``real`` lies outside the dataset folder ``root``."""
    return DataError(f"{printable(str(path), quote=False)}: resolves to {printable(str(real), quote=False)}, "
                     f"outside the dataset folder {printable(str(root), quote=False)}; refused. Copy the "
                     f"data into the dataset folder, or set `datasets.<name>.path` to a folder holding both")


def _digest(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 22), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256(path: Path, root: Path | None = None) -> str:
    """SHA-256 of a regular file (inside ``root`` when given), read through :func:`open_inside`."""
    with open_inside(path, root) as fh:
        return _digest(fh)


def read_inside(path: Path, root: Path | None, *, limit: int) -> tuple[bytes, str]:
    """The bytes of ``path`` (opened by :func:`open_inside`, at most ``limit`` of them) and their SHA-256."""
    with open_inside(path, root) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise DataError(f"{printable(str(path), quote=False)}: {size} bytes, above the {limit}-byte "
                            f"limit")
        blob = fh.read(size + 1)  # read(n) allocates n bytes up front: ask for what fstat says
    if len(blob) != size:
        raise DataError(f"{printable(str(path), quote=False)}: changed size while it was read; refused")
    return blob, hashlib.sha256(blob).hexdigest()


def _tar_mode(fh: BinaryIO) -> str:
    head = fh.read(6)
    fh.seek(0)
    if head[:2] == b"\x1f\x8b":
        return "r:gz"
    if head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[:4] == b"\x28\xb5\x2f\xfd":
        raise DataError("a bzip2, xz or zstd archive; only plain and gzip-compressed tar archives are read "
                        "(the expansion of the others cannot be bounded by the archive's size)")
    return "r:"


def tar_members(path: Path, names: tuple[str, ...], *, max_member: int, max_members: int) -> \
        tuple[dict[str, bytes], str]:
    """The members of the tar archive ``path`` named exactly ``names`` (never by a path the archive
    stores, nothing extracted to disk), and the archive's SHA-256.

    Each must be a regular, non-sparse member appearing once; a member's size and its position in the
    uncompressed stream are bounded by MAX_TAR_EXPANSION times the archive's size (and a member by
    ``max_member`` bytes); the scan stops once all are found and refuses more than ``max_members`` entries.
    """
    where = printable(str(path), quote=False)
    with open_inside(path, None) as fh:
        digest = _digest(fh)
        size = os.fstat(fh.fileno()).st_size
        fh.seek(0)
        try:
            mode = _tar_mode(fh)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        bound = MAX_TAR_EXPANSION * max(size, 1)
        found: dict[str, bytes] = {}
        with tarfile.open(fileobj=fh, mode=mode) as tar:  # type: ignore[call-overload]
            for count, member in enumerate(tar):
                if count >= max_members or member.offset_data > bound:
                    raise DataError(f"{where}: more than {max_members} members or {bound} bytes ("
                                    f"{MAX_TAR_EXPANSION}x the archive) before the members {list(names)}; "
                                    f"not the expected archive")
                if member.name not in names:
                    continue
                at = f"{where}:{member.name}"
                if member.name in found:
                    raise DataError(f"{at}: appears twice in the archive; refused")
                if member.issparse():
                    raise DataError(f"{at}: a sparse member (holes that expand on reading); refused")
                if not member.isfile():
                    raise DataError(f"{at}: is a link or special entry, not a regular file; refused")
                if member.size > max_member:
                    raise DataError(f"{at}: {member.size} bytes, above the {max_member}-byte limit")
                if member.offset_data + member.size > bound:
                    raise DataError(f"{at}: {member.size} bytes at offset {member.offset_data} of the "
                                    f"uncompressed stream, beyond {MAX_TAR_EXPANSION}x the {size}-byte "
                                    f"archive (a CIFAR-10 tarball expands 1.14x); refused as a bomb")
                extracted = tar.extractfile(member)
                blob = extracted.read(member.size) if extracted is not None else b""
                if len(blob) != member.size:
                    raise DataError(f"{at}: truncated ({len(blob)} of {member.size} bytes)")
                found[member.name] = blob
                if len(found) == len(names):
                    break
    return found, digest
