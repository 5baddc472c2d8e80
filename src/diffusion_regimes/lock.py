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
import threading
import time
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


JOB_ENV = "DIFFUSION_REGIMES_WORKFLOW_JOB"
"""Set by the workflow (common.smk): the process is a Snakemake job, not a command a user started."""


def _start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (tells a live process from a later one reusing its PID), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may hold spaces


def _ppid_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; ``False`` where unsupported."""
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


def watch_grandparent(*, interval_s: float = 2.0, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` to this process once its grandparent (the Snakemake process of a job) is gone.

    The parent is the job's ``bash -c`` wrapper, which outlives a killed Snakemake: without this the
    worker would keep running and write outputs the workflow no longer tracks.  A daemon thread polls
    ``/proc``; ``False`` where there is no ``/proc``.
    """
    parent = os.getppid()
    grandparent = _ppid_of(parent)
    if grandparent is None or grandparent <= 1:
        return False
    born = _start_time(grandparent)

    def watch() -> None:
        while _start_time(grandparent) == born:
            time.sleep(interval_s)
        log.warning("the workflow process %d that started this job is gone; stopping", grandparent)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="watch-workflow", daemon=True).start()
    return True


def die_with_job() -> None:
    """In a workflow job, end this worker when its job wrapper or the Snakemake process dies.

    Only in a workflow job: a command a user starts by hand (``nohup python -m diffusion_regimes ...``)
    must survive its shell.
    """
    if os.environ.get(JOB_ENV):
        die_with_parent()
        watch_grandparent()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so ``finally`` blocks run: temporary files go, locks are released."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
