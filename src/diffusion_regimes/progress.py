"""Progress reporting: a tqdm bar on a terminal, plain periodic log lines in a log file.

tqdm redraws its bar with carriage returns; written into a job's log file (stderr redirected by the rule)
that is one ever-growing line per update (80 KB for 800 training steps) that no-one can read.  So the bar
is drawn only when stderr is a terminal; otherwise a line goes to the log every tenth of the way and at
least every ``every_s`` seconds, and once at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("diffusion_regimes.progress")


def stderr_is_terminal() -> bool:
    """True when stderr is an interactive terminal (not a file, pipe or Snakemake log)."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress(
    items: Iterable[T],
    *,
    desc: str,
    unit: str,
    total: int | None = None,
    initial: int = 0,
    leave: bool = True,
    every_s: float = 60.0,
) -> Iterator[T]:
    """Iterate ``items`` while reporting progress; ``total`` defaults to ``len(items)`` when it has one.

    ``initial`` counts items already done (a resumed training run starts at its checkpoint step).
    """
    if total is None and hasattr(items, "__len__"):
        total = initial + len(items)  # type: ignore[arg-type]
    if stderr_is_terminal():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, unit=unit, total=total, initial=initial, leave=leave)
        return
    yield from _logged(items, desc=desc, unit=unit, total=total, initial=initial, every_s=every_s)


def _logged(items: Iterable[T], *, desc: str, unit: str, total: int | None, initial: int,
            every_s: float) -> Iterator[T]:
    start = time.perf_counter()
    last_time = start
    done = initial
    # report at each tenth of the total (or only by time when the total is unknown)
    step = max(1, total // 10) if total else None
    next_mark = (initial // step + 1) * step if step else None
    for item in items:
        yield item
        done += 1
        now = time.perf_counter()
        at_mark = next_mark is not None and done >= next_mark
        if at_mark or now - last_time >= every_s or (total is not None and done == total):
            if at_mark and step is not None:
                next_mark = (done // step + 1) * step
            last_time = now
            elapsed = now - start
            rate = (done - initial) / elapsed if elapsed > 0 else float("inf")
            of_total = f"/{total} ({100 * done / total:.0f} %)" if total else ""
            log.info("%s: %d%s %s, %.0f s, %.3g %s/s", desc, done, of_total, unit, elapsed, rate, unit)
