"""A restricted unpickler for the pickled dataset batches (CIFAR-10 python version, downsampled ImageNet).

A pickle is a program: unpickling resolves arbitrary globals and calls them, so a batch file from a shared
folder or a mirror could run any command.  :func:`load_batch` resolves only the globals a genuine batch
needs -- NumPy's array and scalar reconstruction (the ``numpy.core`` names written by NumPy 1.x, the
``numpy._core`` names written by NumPy 2.x, protocol 5's ``_frombuffer``), ``numpy.ndarray``,
``numpy.dtype`` and ``_codecs.encode`` (how Python 3 writes ``bytes`` at protocols 0-2) -- and refuses
everything else with a :class:`DataError` naming the file and the global.  Sizes are bounded by the file's
own length before anything is allocated: an array may not claim more bytes than the pickle holds, and memo
indices (which CPython's unpickler turns into a table of that many slots) may not run ahead of the opcodes
read.
"""

from __future__ import annotations

import codecs
import io
import pickle
import pickletools
from collections.abc import Callable
from typing import Any, cast

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

from diffusion_regimes.errors import DataError

__all__ = ["ALLOWED_GLOBALS", "load_batch"]

# Opcodes that store into the memo at an index given in the pickle (MEMOIZE, protocol 4+, takes the next).
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_LATIN1_NAMES = {"latin1", "latin_1", "iso8859_1", "iso_8859_1", "l1"}


def _reconstruct_bounded(limit: int) -> Callable[..., np.ndarray]:
    """``_reconstruct(ndarray, shape, typecode)`` refusing any array larger than ``limit`` bytes.

    Genuine pickles always pass ``shape=(0,)`` and fill the data in ``__setstate__`` (which NumPy checks
    against the bytes given); a crafted pickle can ask for any shape, and NumPy would allocate it here.
    """

    def reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError(f"array reconstruction of {subtype!r}, not numpy.ndarray")
        dims = tuple(shape) if isinstance(shape, tuple | list) else (shape,)
        if not all(isinstance(d, int) and d >= 0 for d in dims):
            raise pickle.UnpicklingError(f"array shape {dims!r} is not a tuple of non-negative integers")
        nbytes = int(np.prod(dims, dtype=object)) * np.dtype(typecode).itemsize
        if nbytes > limit:
            raise pickle.UnpicklingError(f"an array of shape {dims} ({nbytes} bytes) is larger than the "
                                         f"{limit}-byte file")
        return cast(np.ndarray, _multiarray._reconstruct(subtype, shape, typecode))

    return reconstruct


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 pickles ``bytes`` (latin-1, strict).

    The name is compared as written, without ``codecs.lookup``, which would import ``encodings.<name>``.
    """
    if encoding.lower().replace("-", "_") not in _LATIN1_NAMES or errors != "strict":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} (only latin1 is expected)")
    return codecs.encode(obj, "latin1")


def _allowed(limit: int) -> dict[tuple[str, str], Any]:
    reconstruct = _reconstruct_bounded(limit)
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        # Protocol 5 (Python 3.14's default): _frombuffer views the bytes the pickle holds, so it is bounded.
        ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,  # type: ignore[attr-defined]
        ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,  # type: ignore[attr-defined]
        # NumPy scalars (e.g. labels kept as np.int64 in a list); built from the bytes the pickle holds.
        ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


ALLOWED_GLOBALS: tuple[str, ...] = tuple(sorted(f"{m}.{n}" for m, n in _allowed(0)))


class _Refused(Exception):
    """A global outside the allow-list; turned into a DataError naming the file outside the unpickler."""


class _BatchUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, *, limit: int) -> None:
        super().__init__(file, encoding="latin1")
        self._globals = _allowed(limit)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not part of a dataset batch")


def _check_opcodes(blob: bytes) -> None:
    """Refuse memo indices that run ahead of the opcodes read, before CPython sizes its memo by them.

    Picklers number memo entries 0, 1, 2, ... as they write them, so a genuine index is below the count
    of opcodes so far; CPython's unpickler allocates a table up to any index it meets (a 9-byte pickle
    with index 2**26 costs 1 GB, 2**31 costs 32 GB).
    """
    for count, (op, arg, pos) in enumerate(pickletools.genops(blob)):
        if op.name in _MEMO_PUT and isinstance(arg, int) and arg > count:
            raise pickle.UnpicklingError(f"memo index {arg} at byte {pos} after only {count} opcodes")


def load_batch(blob: bytes, *, where: str) -> dict[str, Any]:
    """Unpickle one dataset batch ``blob`` (read from ``where``) into a dict with ``str`` keys.

    Python 2 strings are decoded as latin-1 (what NumPy expects for its array data).  Raises DataError
    naming ``where`` for a refused global, a size beyond the file, or a corrupt or non-dict pickle.
    """
    try:
        _check_opcodes(blob)
        obj = _BatchUnpickler(io.BytesIO(blob), limit=len(blob)).load()
    except _Refused as exc:
        raise DataError(
            f"{where}: refused to unpickle global {exc} -- a dataset batch needs only NumPy's array "
            f"reconstruction (see ALLOWED_GLOBALS in diffusion_regimes.data.safe_pickle). The file is not a "
            f"genuine batch (it may try to run code); delete it and get the dataset again from its "
            f"official source"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other unpickling failure means a corrupt or crafted batch
        raise DataError(f"{where}: cannot unpickle ({exc}); the file is corrupt, truncated or not a "
                        f"dataset batch") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}

