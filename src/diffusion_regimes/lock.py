"""Exclusive use of a run folder by one process, and workers that die with the job that started them.

A trainer locks its run folder with ``flock`` on ``<folder>/.lock``, a file holding ``<pid> <host>``.  The
kernel drops the lock when the process dies however it dies (kill -9 included), so a lock file left by a
dead process is taken over without any PID guessing; a live holder makes the second trainer refuse,
naming the holder's PID.  ``flock`` is advisory and local to the machine on some network file systems,
which is enough against the case it guards: two jobs of one workflow on one run folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from diffusion_regimes.errors import PipelineError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class LockedError(PipelineError):
    """Another live process holds the lock of a run folder."""


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` for the block; :class:`LockedError` if a live process has it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"{folder} is in use by another trainer (process {holder} per {path}); wait for it or stop "
                "it first. Two trainers on one run folder would overwrite each other's checkpoints."
            ) from None
        previous = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if previous:
            log.info("taking over the lock %s left by process %s, which no longer holds it", path, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            yield path
        finally:
            # Emptied, not deleted: deleting would let a waiting process lock a file no one else sees.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; ``False`` where unsupported.

    A workflow job is ``bash -c "python -m diffusion_regimes ..."``: when the job wrapper is killed, the
    worker must not keep running and write outputs the workflow has already given up on.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    # The parent may have died before prctl took effect; then we were re-parented already.
    if os.getppid() == 1:
        os.kill(os.getpid(), sig)
    return True


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so ``finally`` blocks run: temporary files go, locks are released."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
