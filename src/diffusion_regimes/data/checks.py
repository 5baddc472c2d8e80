"""Content checks on what a reader decoded, and the one way untrusted text enters an error message.

Every reader ends in :func:`labelled_images`: the pixels of the dtype and shape the format defines (no
silent casts), as many labels as images, every label inside the format's range.  Names, keys and values
taken from files or folder listings go into messages only through :func:`printable`, so a file name holding
terminal escapes or newlines cannot rewrite a terminal or forge lines of a job log.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from diffusion_regimes.errors import DataError

__all__ = ["labelled_images", "printable", "reading"]

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127)}
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 6, 6, 6, 6


def printable(value: Any, *, limit: int = 120, quote: bool = True) -> str:
    """``value`` as text safe for a terminal and a log line: control characters (and anything else
    ``repr`` escapes) written as escapes, at most ``limit`` characters (longer ones cut with ``...``).

    ``quote=False`` drops the quotes of a string's ``repr`` (for file names inside a sentence).
    """
    _REPR.maxstring = _REPR.maxother = limit
    if isinstance(value, str | bytes | bytearray):
        text = repr(value[: limit + 1])
        if quote is False and isinstance(value, str):
            text = text[1:-1]
    elif isinstance(value, BaseException):
        text = printable(str(value), limit=limit, quote=False)
    else:
        text = _REPR.repr(value)
    text = text.translate(_CONTROL)  # what a repr may still carry (an object's own __repr__)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def reading(where: str, what: str = "the file") -> Iterator[None]:
    """Turn any exception a decoder raises while reading ``where`` into a DataError naming it (exit 2)."""
    try:
        yield
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder's own errors are data errors here
        raise DataError(f"{where}: cannot read {what} ({type(exc).__name__}: {printable(exc, quote=False)}); "
                        f"the file is corrupt, truncated or not what it is named") from None


def labelled_images(data: Any, labels: Any, *, where: str, row: int, label_range: range,
                    hint: str = "") -> tuple[np.ndarray, np.ndarray]:
    """One batch's pixels ``(N, row)`` uint8 and labels ``(N,)`` int64, checked as decoded.

    Refused with a DataError naming ``where``: pixels that are not a 2-D uint8 array with rows of ``row``
    values (a float, int16 or list batch is not cast), a label count other than the image count, labels
    that are not integers or lie outside ``label_range``.  ``hint`` ends the shape message (which config
    key sets ``row``).
    """
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = f"dtype {data.dtype}" if isinstance(data, np.ndarray) else f"type {type(data).__name__}"
        raise DataError(f"{where}: pixels of {kind}; the format stores uint8 (0-255) arrays, and a batch "
                        f"holding anything else is refused rather than cast")
    if data.ndim != 2 or data.shape[1] != row:
        raise DataError(f"{where}: rows of {data.shape[1:]} values, expected {row}{hint}")
    try:
        values = np.asarray(labels)
    except Exception:  # noqa: BLE001 - ragged or exotic label lists
        values = np.asarray([], dtype=object)
    if values.ndim == 1 and values.size == 0:
        values = np.zeros(0, np.int64)  # an empty list reads as float64
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be a list of integers, got {printable(labels, limit=60)}")
    if len(values) != len(data):
        raise DataError(f"{where}: {len(values)} labels for {len(data)} images; every image needs its own "
                        f"label (a shifted list would give images their neighbours' labels)")
    if len(values) and (values.min() < label_range.start or values.max() >= label_range.stop):
        bad = values[(values < label_range.start) | (values >= label_range.stop)]
        raise DataError(f"{where}: label {int(bad[0])} outside the format's range {label_range.start}.."
                        f"{label_range.stop - 1} ({len(bad)} such labels); the file is corrupt or not this "
                        f"dataset")
    return data, values.astype(np.int64, copy=False)
