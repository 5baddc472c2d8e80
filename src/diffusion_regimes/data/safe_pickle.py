"""A restricted unpickler for the pickled dataset batches (CIFAR-10 python version, downsampled ImageNet).

A pickle is a program: unpickling resolves arbitrary globals and calls them, so a batch file from a shared
folder or a mirror could run any command.  Resolving only NumPy's own names is not enough either: NumPy's
array constructors, given a crafted dtype (object fields, structured fields at chosen offsets) or chosen
strides, read pointers or heap bytes out of the file, or turn a few bytes into gigabytes.

So :func:`load_batch` hands the unpickler none of NumPy's callables.  The names a genuine batch uses
(NumPy 1.x ``numpy.core`` and 2.x ``numpy._core`` spellings alike) resolve to stand-ins of this module that
accept exactly what genuine batches contain -- one plain numeric dtype per array (booleans, integers and
floats of the usual widths, either byte order, no fields, no sub-arrays, no metadata), arrays rebuilt
from a byte buffer whose length equals shape x itemsize -- and build the array themselves with
``numpy.frombuffer``.  Everything else is refused with a :class:`DataError` naming the file and what was
refused.  Sizes are bounded by the file's own length: the bytes the stand-ins copy may not exceed it, and
memo indices (which CPython's unpickler turns into a table of that many slots) may not run ahead of the
opcodes read.
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
import pickletools
from typing import Any

import numpy as np

from diffusion_regimes.data.checks import printable
from diffusion_regimes.errors import DataError

__all__ = ["ALLOWED_GLOBALS", "PLAIN_DTYPES", "load_batch"]

# Opcodes that store into the memo at an index given in the pickle (MEMOIZE, protocol 4+, takes the next).
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_LATIN1_NAMES = {"latin1", "latin_1", "iso8859_1", "iso_8859_1", "l1"}
# The dtype codes NumPy writes for plain numeric arrays (``dtype.str`` without the byte-order character).
PLAIN_DTYPES = ("b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8")
_BYTE_ORDERS = ("<", ">", "=", "|")
_MAX_NDIM = 8
# A genuine batch is a dict of arrays, lists and strings; deeper nesting is not a batch.
_MAX_DEPTH = 6


class _Refused(Exception):
    """Something outside what genuine batches contain; the message says what."""


class _Budget:
    """Bytes the stand-ins may copy in total: no more than the file holds (each genuine byte is copied
    once), so repeated references to one buffer cannot multiply a small file into gigabytes."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def charge(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise _Refused(f"{what}: {nbytes} more bytes, beyond the file's own length")
        self.left -= nbytes


def _as_bytes(raw: Any, budget: _Budget, what: str) -> bytes | bytearray:
    """A buffer as written by Python 3 (bytes, protocol 5's bytearray) or Python 2 (str, latin-1)."""
    if isinstance(raw, bytes | bytearray):
        return raw
    if isinstance(raw, str):
        budget.charge(len(raw), what)
        return raw.encode("latin1")
    raise _Refused(f"{what}: data of type {type(raw).__name__}, not a byte string")


class _PlainDtype:
    """Stands in for ``numpy.dtype(code, align, copy)`` and its BUILD state."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        code = code.decode("latin1") if isinstance(code, bytes) else code
        if not isinstance(code, str) or code not in PLAIN_DTYPES:
            raise _Refused(f"dtype {printable(code)} (only the plain numeric dtypes "
                           f"{', '.join(PLAIN_DTYPES)})")
        if align not in (0, 1) or copy not in (0, 1):
            raise _Refused(f"dtype arguments {printable((align, copy))}")
        self.code, self.order = code, "|" if code.endswith("1") else "="

    def __setstate__(self, state: Any) -> None:
        # NumPy writes (3, byteorder, None, None, None, -1, -1, 0) for a plain dtype (a trailing metadata
        # None at version 4): no sub-array, no field names, no fields, no explicit size or alignment, no
        # flags.
        plain = (None, None, None, -1, -1, 0)
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
                and state[1] in _BYTE_ORDERS and state[2:8] == plain and state[8:] in ((), (None,))):
            raise _Refused(f"dtype state {printable(state)} (fields, sub-arrays, sizes or flags)")
        self.order = state[1]

    def resolve(self) -> np.dtype:
        return np.dtype(self.code).newbyteorder(self.order) if self.order in "<>" else np.dtype(self.code)


def _dtype_of(value: Any, what: str) -> np.dtype:
    if not isinstance(value, _PlainDtype):
        raise _Refused(f"{what} with dtype {printable(value)}")
    return value.resolve()


def _shape_of(value: Any, what: str) -> tuple[int, ...]:
    shape = (value,) if isinstance(value, int) else value
    if not (isinstance(shape, tuple | list) and len(shape) <= _MAX_NDIM
            and all(type(d) is int and d >= 0 for d in shape)):
        raise _Refused(f"{what} with shape {printable(value)}")
    return tuple(shape)


def _build_array(raw: Any, dtype: Any, shape: Any, order: str, budget: _Budget, what: str) -> np.ndarray:
    """The one place arrays are made: a plain dtype, a shape, and exactly shape x itemsize bytes."""
    dt, dims = _dtype_of(dtype, what), _shape_of(shape, what)
    buffer = _as_bytes(raw, budget, what)
    expected = math.prod(dims) * dt.itemsize
    if len(buffer) != expected:
        raise _Refused(f"{what} of shape {dims} and dtype {dt.str}: {len(buffer)} bytes of data, not "
                       f"{expected}")
    return np.frombuffer(buffer, dtype=dt).reshape(dims, order=order)  # type: ignore[call-overload]


class _ArrayClass:
    """Stands in for ``numpy.ndarray``: only a marker for ``_reconstruct``, never called."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _ArrayClass:
        raise _Refused(f"numpy.ndarray{printable(args)} called directly (an array constructor given a "
                       f"shape, a buffer, an offset or strides)")


class _PendingArray:
    """``_reconstruct(ndarray, (0,), b'b')`` as NumPy pickles write it; the array comes with BUILD."""

    def __init__(self, budget: _Budget) -> None:
        self.budget, self.array = budget, None

    def __setstate__(self, state: Any) -> None:
        # (version, shape, dtype, is_fortran, data), or the same without the version
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused(f"array state {printable(state)}")
        shape, dtype, fortran, raw = state[-4:]
        if self.array is not None or fortran not in (0, 1):
            raise _Refused(f"array state {printable(state)}")
        self.array = _build_array(raw, dtype, shape, "F" if fortran else "C", self.budget, "array")


def _stand_ins(budget: _Budget) -> dict[tuple[str, str], Any]:
    def reconstruct(subtype: Any, shape: Any, typecode: Any) -> _PendingArray:
        if subtype is not _ArrayClass:
            raise _Refused(f"_reconstruct of {printable(subtype)} (only numpy.ndarray)")
        if shape not in ((0,), [0]) or typecode not in ("b", b"b"):
            raise _Refused(f"_reconstruct with shape {printable(shape)} and typecode {printable(typecode)} "
                           f"(arrays are rebuilt from their data, not allocated by shape)")
        return _PendingArray(budget)

    def frombuffer(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if order not in ("C", "F"):
            raise _Refused(f"_frombuffer with order {printable(order)}")
        return _build_array(raw, dtype, shape, order, budget, "array")

    def scalar(dtype: Any, raw: Any) -> np.generic:
        return _build_array(raw, dtype, (), "C", budget, "scalar")[()]  # type: ignore[no-any-return]

    def encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        # how Python 3 pickles bytes at protocols 0-2; the name is compared as written, without
        # codecs.lookup, which would import ``encodings.<name>``
        if not isinstance(obj, str) or not isinstance(encoding, str) \
                or encoding.lower().replace("-", "_") not in _LATIN1_NAMES or errors != "strict":
            raise _Refused(f"_codecs.encode with encoding {printable(encoding)} (only latin1 is expected)")
        budget.charge(len(obj), "_codecs.encode")
        return codecs.encode(obj, "latin1")

    def empty_bytes(*args: Any) -> bytes:
        if args:
            raise _Refused(f"bytes{printable(args)}")
        return b""  # how Python 3 pickles b'' (an empty array's data) at protocols 0-2

    names: dict[tuple[str, str], Any] = {("_codecs", "encode"): encode, ("numpy", "dtype"): _PlainDtype,
                                         ("numpy", "ndarray"): _ArrayClass,
                                         ("__builtin__", "bytes"): empty_bytes,
                                         ("builtins", "bytes"): empty_bytes}
    for core in ("numpy.core", "numpy._core"):
        names[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        names[(f"{core}.multiarray", "scalar")] = scalar
        names[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return names


ALLOWED_GLOBALS: tuple[str, ...] = tuple(sorted(f"{m}.{n}" for m, n in _stand_ins(_Budget(0))))


class _BatchUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, *, budget: _Budget) -> None:
        super().__init__(file, encoding="latin1")
        self._globals = _stand_ins(budget)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise _Refused(f"global {printable(f'{module}.{name}', quote=False)}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id (not part of a dataset batch)")


def _check_opcodes(blob: bytes) -> None:
    """Refuse memo indices that run ahead of the opcodes read, before CPython sizes its memo by them.

    Picklers number memo entries 0, 1, 2, ... as they write them, so a genuine index is below the count
    of opcodes so far; CPython's unpickler allocates a table up to any index it meets (a 9-byte pickle
    with index 2**26 costs 1 GB, 2**31 costs 32 GB).
    """
    for count, (op, arg, pos) in enumerate(pickletools.genops(blob)):
        if op.name in _MEMO_PUT and isinstance(arg, int) and arg > count:
            raise pickle.UnpicklingError(f"memo index {arg} at byte {pos} after only {count} opcodes")


def _finish(obj: Any, depth: int, done: dict[int, Any]) -> Any:
    """Replace each pending array by its array, walking dicts, lists and tuples once each; refuse what a
    batch does not hold (a dtype on its own, an array never given its data, deep nesting)."""
    if isinstance(obj, _PendingArray):
        if obj.array is None:
            raise _Refused("an array without data")
        return obj.array
    if isinstance(obj, _PlainDtype | _ArrayClass):
        raise _Refused("a NumPy type outside an array")
    if not isinstance(obj, dict | list | tuple):
        return obj
    if id(obj) in done:
        return done[id(obj)]
    if depth > _MAX_DEPTH:
        raise _Refused(f"containers nested deeper than {_MAX_DEPTH}")
    if isinstance(obj, tuple):
        done[id(obj)] = result = tuple(_finish(v, depth + 1, done) for v in obj)
        return result
    done[id(obj)] = obj
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, _PendingArray | _PlainDtype | _ArrayClass | dict | list | tuple):
                obj[i] = _finish(v, depth + 1, done)
    else:
        for k, v in obj.items():
            obj[k] = _finish(v, depth + 1, done)
    return obj


def load_batch(blob: bytes, *, where: str) -> dict[str, Any]:
    """Unpickle one dataset batch ``blob`` (read from ``where``) into a dict with ``str`` keys.

    Python 2 strings are decoded as latin-1 (what NumPy expects for its array data).  Raises DataError
    naming ``where`` for anything refused, a size beyond the file, or a corrupt or non-dict pickle.
    """
    try:
        _check_opcodes(blob)
        obj = _finish(_BatchUnpickler(io.BytesIO(blob), budget=_Budget(len(blob))).load(), 0, {})
    except _Refused as exc:
        raise DataError(
            f"{where}: refused to unpickle {exc} -- a dataset batch holds only plain numeric arrays "
            f"rebuilt from their bytes (see ALLOWED_GLOBALS and PLAIN_DTYPES in "
            f"diffusion_regimes.data.safe_pickle). The file is not a genuine batch (it may be crafted); "
            f"delete it and get the dataset again from its official source"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other unpickling failure means a corrupt or crafted batch
        raise DataError(f"{where}: cannot unpickle ({printable(exc, quote=False)}); the file is corrupt, "
                        f"truncated or not a dataset batch") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(obj).__name__}")
    keys = [k.decode("latin1") if isinstance(k, bytes) else k for k in obj]
    if not all(isinstance(k, str) for k in keys):
        raise DataError(f"{where}: a batch's keys are strings, got {printable(list(obj)[:8])}")
    return dict(zip(keys, obj.values(), strict=True))
