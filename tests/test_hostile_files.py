"""Crafted dataset files of the four kinds docs/security.md closes, each read in a forked child.

Every case runs the reader in a child process (:func:`outcome`) with a memory cap and a wall-clock limit,
so that a reader which crashes, hangs or allocates gigabytes fails its test instead of taking pytest (or
the machine) down.  The rule each test checks: the reader returns genuine data, or raises a DataError that
names the file; never a signal, a raw exception, a hang, or silently wrong data.

The four sections match the four classes: strict array reconstruction (``test_pickle_*``), content checks
(``test_content_*``), special files and links (``test_paths_*``), decoders that are not ours
(``test_decoder_*``).
"""

from __future__ import annotations

import io
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

from diffusion_regimes.data import DatasetSpec, sources
from diffusion_regimes.errors import DataError
from tests.test_data import _webp, _write_idx
from tests.test_untrusted_input import _cifar_folder, _dumps, _Gadget, _tar

CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


# ---------------------------------------------------------------- running a reader in a forked child
@dataclass(frozen=True)
class Outcome:
    kind: str  # "ok", "DataError", "error" (another exception), "signal", "timeout"
    message: str

    def refused(self, where: Path | str) -> bool:
        """A DataError naming ``where`` (the file) -- what every crafted input must give."""
        return self.kind == "DataError" and str(where) in self.message


def outcome(fn, *, timeout: float = 300.0, memory: int = 3 << 30) -> Outcome:
    """Run ``fn()`` in a forked child with ``memory`` bytes of address space above what the child starts
    with, and report how it ended.  The child's result travels back as text through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        code, text = 0, ""
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[0])
            limit = pages * os.sysconf("SC_PAGE_SIZE") + memory
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            result = fn()
            text = repr(result)[:2000]
        except DataError as exc:
            code, text = 2, str(exc)
        except BaseException as exc:  # noqa: BLE001 - the point is to report whatever it was
            code, text = 3, f"{type(exc).__name__}: {exc}"
        os.write(write_end, text.encode("utf-8", "backslashreplace")[:60000])
        os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return Outcome("timeout", f"still running after {timeout} s")
        time.sleep(0.01)
    with os.fdopen(read_end, "rb") as fh:
        text = fh.read().decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        return Outcome("signal", signal.Signals(os.WTERMSIG(status)).name)
    kind = {0: "ok", 2: "DataError"}.get(os.WEXITSTATUS(status), "error")
    return Outcome(kind, text)


def _prepare(spec: DatasetSpec):
    """Read every image of both classes with the spec's reader (NumPy only: PyTorch's thread pool, started
    by earlier tests in the parent, can deadlock in a forked child)."""
    from diffusion_regimes.data.registry import reader

    source = reader(spec.format)(spec)
    return tuple(cls.read(np.arange(cls.count)).shape for cls in source.classes.values())


# ---------------------------------------------------------------- pickles: strict array reconstruction
class _WithState:
    """Pickles as ``func(*args)`` followed by BUILD ``state``: how a crafted dtype or array carries state."""

    def __init__(self, func, args, state) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return self.func, self.args, self.state


def _object_dtype() -> np.dtype:
    return np.dtype([("a", "O")])


def _crafted_arrays() -> dict[str, object]:
    """Values for a batch's ``data`` built only from globals the first unpickler allowed."""
    # a structured dtype whose one field lies 1 MiB past the 8-byte item: reading it reads the heap
    far_field = _WithState(np.dtype, ("V8", False, True),
                           (3, "|", None, ("a",), {"a": (np.dtype("u1"), 1 << 20)}, 8, 1, 0))
    return {
        "ndarray-object-from-bytes": _Gadget(np.ndarray, (1,), _object_dtype(), b"A" * 8),
        "ndarray-zero-strides": _Gadget(np.ndarray, (4096, 3072), np.dtype("u1"), b"x", 0, (0, 0)),
        "ndarray-with-offset-and-strides": _Gadget(np.ndarray, (4, 3072), np.dtype("u1"), bytes(3072), 0,
                                                   (0, 1)),
        "object-array": np.array([1, "x"], dtype=object),
        "structured-array": np.zeros(4, dtype=[("a", "u1"), ("b", "u1")]),
        "scalar-object-field": _Gadget(_multiarray.scalar, _object_dtype(), b"A" * 8),
        "scalar-huge-subarray": _Gadget(_multiarray.scalar, np.dtype(("u1", (1 << 15, 1 << 15))), b""),
        "frombuffer-object": _Gadget(_numeric._frombuffer, b"A" * 8, np.dtype("O"), (1,), "C"),
        "dtype-state-far-field": _WithState(_multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                            (1, (4,), far_field, False, bytes(32))),
        "array-shape-beyond-bytes": _WithState(_multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                               (1, (3, 3072), np.dtype("u1"), False, bytes(3072))),
        "reconstruct-with-shape": _Gadget(_multiarray._reconstruct, np.ndarray, (64,), b"b"),
    }


CRAFTED = sorted(_crafted_arrays())


def _crafted_blob(case: str) -> bytes:
    return pickle.dumps({"data": _crafted_arrays()[case], "labels": [3, 5, 3, 5]}, protocol=2)


def _imagenet_folder(folder: Path, blobs: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    return folder


def _imagenet_spec(folder: Path, **kwargs) -> DatasetSpec:
    return DatasetSpec(format="imagenet", path=str(folder), resolution=32, classes=("3", "5"), n=2, **kwargs)


def _cifar_spec(path: Path) -> DatasetSpec:
    return DatasetSpec(format="cifar10", path=str(path), classes=("cat", "dog"), n=2)


@pytest.mark.parametrize("reader", ["cifar10", "imagenet"])
@pytest.mark.parametrize("case", CRAFTED)
def test_pickle_crafted_array_is_refused(tmp_path, case, reader):
    blob = _crafted_blob(case)
    if reader == "cifar10":
        folder = _cifar_folder(tmp_path / "c", [blob] * 5)
        where, spec = folder / "cifar-10-batches-py" / "data_batch_1", _cifar_spec(folder)
    else:
        folder = _imagenet_folder(tmp_path / "i", {"train_data_batch_1": blob})
        where, spec = folder / "train_data_batch_1", _imagenet_spec(folder)
    got = outcome(lambda: _prepare(spec))
    assert got.refused(where), got


def test_pickle_refusal_says_what_was_refused(tmp_path):
    from diffusion_regimes.data.safe_pickle import load_batch

    with pytest.raises(DataError, match=r"^b: refused to unpickle dtype 'O8' \(only the plain numeric"):
        load_batch(_crafted_blob("object-array"), where="b")
    with pytest.raises(DataError, match=r"^b: refused .*strides|^b: refused .*numpy.ndarray"):
        load_batch(_crafted_blob("ndarray-zero-strides"), where="b")


@pytest.mark.parametrize("protocol", ["py2", 0, 2, 4, 5])
def test_pickle_genuine_arrays_of_every_plain_dtype_load_identical(protocol):
    from diffusion_regimes.data.safe_pickle import load_batch

    rng = np.random.default_rng(0)
    arrays = {f"a{i}": rng.integers(0, 100, (3, 5)).astype(dt)
              for i, dt in enumerate(["u1", "i1", "<u2", ">i4", "<i8", ">u8", "<f4", ">f8", "?"])}
    arrays["fortran"] = np.asfortranarray(rng.integers(0, 255, (4, 6), dtype=np.uint8))
    arrays["empty"] = np.zeros((0, 3072), np.uint8)
    arrays["scalar"] = np.int64(7)
    loaded = load_batch(_dumps(arrays, protocol), where="b")
    for key, value in arrays.items():
        got = loaded[key]
        assert got.dtype == value.dtype and got.shape == value.shape, key
        assert np.asarray(got).tobytes(order="A") == np.asarray(value).tobytes(order="A"), key


# ---------------------------------------------------------------- content checks after decoding
def _cifar_batches(rng, *, per_batch: int = 6, **changes) -> list[bytes]:
    out = []
    for _ in range(5):
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [3, 5] * (per_batch // 2), "batch_label": "training batch"}
        batch.update({k: (v(batch) if callable(v) else v) for k, v in changes.items()})
        out.append(pickle.dumps(batch, protocol=2))
    return out


CIFAR_CONTENT = {
    "one-label-fewer": dict(labels=lambda b: b["labels"][:-1]),
    "float-pixels": dict(data=lambda b: np.where(b["data"] > 128, np.nan, 300.0)),
    "negative-float-pixels": dict(data=lambda b: -b["data"].astype(np.float64)),
    "int16-pixels": dict(data=lambda b: b["data"].astype(np.int16) * 3),
    "label-10": dict(labels=lambda b: [10] + b["labels"][1:]),
    "label-minus-1": dict(labels=lambda b: [-1] + b["labels"][1:]),
    "float-labels": dict(labels=lambda b: [3.0] + b["labels"][1:]),
    "pixels-as-list": dict(data=lambda b: b["data"].tolist()),
    "rows-of-3071": dict(data=lambda b: b["data"][:, :-1]),
}


@pytest.mark.parametrize("case", sorted(CIFAR_CONTENT))
def test_content_cifar_batch_is_checked(tmp_path, case):
    folder = _cifar_folder(tmp_path / "c", _cifar_batches(np.random.default_rng(1), **CIFAR_CONTENT[case]))
    got = outcome(lambda: _prepare(_cifar_spec(folder)))
    assert got.refused(folder / "cifar-10-batches-py" / "data_batch_1"), got


def _imagenet_batch(rng, labels: list, *, side: int = 32) -> bytes:
    data = rng.integers(0, 256, (len(labels), 3 * side * side), dtype=np.uint8)
    return pickle.dumps({"data": data, "labels": labels, "mean": data.mean(0)}, protocol=2)


@pytest.mark.parametrize("labels", [[0, 3, 5, 3], [1001, 3, 5, 3], [3, 5, 3]])
def test_content_imagenet_labels_are_checked(tmp_path, labels):
    rng = np.random.default_rng(2)
    blob = _imagenet_batch(rng, labels)
    if len(labels) == 3:  # one label fewer than the four images
        batch = pickle.loads(blob)
        batch["data"] = np.concatenate([batch["data"], batch["data"][:1]])
        blob = pickle.dumps(batch, protocol=2)
    folder = _imagenet_folder(tmp_path / "i", {"train_data_batch_1": blob})
    got = outcome(lambda: _prepare(_imagenet_spec(folder)))
    assert got.refused(folder / "train_data_batch_1"), got


def test_content_imagenet_reads_exact_batch_names_only(tmp_path):
    rng = np.random.default_rng(3)
    genuine = {"train_data_batch_1": _imagenet_batch(rng, [3, 5] * 4),
               "train_data_batch_2": _imagenet_batch(rng, [5, 3] * 4)}
    clean = _imagenet_folder(tmp_path / "clean", genuine)
    stray = {"train_data_batch_1.bak": _imagenet_batch(rng, [3, 3] * 4),
             "train_data_batch_10~": _imagenet_batch(rng, [5, 5] * 4),
             "train_data_batch_2.orig": _imagenet_batch(rng, [3, 5] * 4)}
    messy = _imagenet_folder(tmp_path / "messy", {**genuine, **stray})

    def read(folder: Path, **kwargs):
        source = sources.read_imagenet(_imagenet_spec(folder, **kwargs))
        images = [cls.read(np.arange(cls.count)) for cls in source.classes.values()]
        ids = [cls.ids(np.arange(cls.count)) for cls in source.classes.values()]
        return [a.tobytes() for a in images], ids, sorted(source.checksums)

    expected = outcome(lambda: read(clean))
    assert expected.kind == "ok", expected
    assert outcome(lambda: read(messy)) == expected
    assert outcome(lambda: read(messy, batches=(1, 2))) == expected


def test_content_idx_labels_and_dims_are_checked(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (20, 28, 28))
    spec = DatasetSpec(format="mnist_idx", path=str(tmp_path), classes=("1", "2"), n=2)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([1, 2] * 9 + [12, 1]))
    got = outcome(lambda: _prepare(spec))
    assert got.refused(tmp_path / "train-labels-idx1-ubyte.gz"), got
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([1, 2] * 10))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 32, 32)))
    got = outcome(lambda: _prepare(spec))
    assert got.refused(tmp_path / "train-images-idx3-ubyte.gz"), got


# ---------------------------------------------------------------- special files and links
def _genuine_imagenet(folder: Path) -> Path:
    return _imagenet_folder(folder, {"train_data_batch_2": _imagenet_batch(np.random.default_rng(5),
                                                                           [3, 5] * 4)})


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "outside"])
def test_paths_imagenet_batch_must_be_a_regular_file_inside(tmp_path, kind):
    folder = _genuine_imagenet(tmp_path / "i")
    batch = folder / "train_data_batch_1"
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        batch.symlink_to(tmp_path / "fifo")
    elif kind == "device":
        batch.symlink_to("/dev/zero")
    elif kind == "directory":
        batch.mkdir()
    else:
        (tmp_path / "elsewhere").write_bytes(_imagenet_batch(np.random.default_rng(6), [3, 5]))
        batch.symlink_to(tmp_path / "elsewhere")
    got = outcome(lambda: _prepare(_imagenet_spec(folder)), timeout=60, memory=1 << 30)
    assert got.refused(batch), got


def test_paths_cifar_folder_link_outside_is_refused(tmp_path):
    folder = _cifar_folder(tmp_path / "c", _cifar_batches(np.random.default_rng(7)))
    batch = folder / "cifar-10-batches-py" / "data_batch_3"
    batch.rename(tmp_path / "moved")
    batch.symlink_to(tmp_path / "moved")
    got = outcome(lambda: _prepare(_cifar_spec(folder)))
    assert got.refused(batch) and "outside" in got.message, got


def test_paths_links_inside_the_dataset_are_followed(tmp_path):
    folder = _cifar_folder(tmp_path / "c", _cifar_batches(np.random.default_rng(7)))
    batch = folder / "cifar-10-batches-py" / "data_batch_3"
    batch.rename(folder / "kept")
    batch.symlink_to(folder / "kept")
    assert outcome(lambda: _prepare(_cifar_spec(folder))).kind == "ok"


def test_paths_idx_link_outside_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    _write_idx(tmp_path / "m" / "train-images-idx3-ubyte.gz", np.zeros((4, 28, 28)))
    _write_idx(tmp_path / "labels.gz", np.array([1, 2, 1, 2]))
    (tmp_path / "m" / "train-labels-idx1-ubyte.gz").symlink_to(tmp_path / "labels.gz")
    spec = DatasetSpec(format="mnist_idx", path=str(tmp_path / "m"), classes=("1", "2"), n=2)
    got = outcome(lambda: _prepare(spec))
    assert got.refused(tmp_path / "m" / "train-labels-idx1-ubyte.gz") and "outside" in got.message, got


def _lmdb_export(folder: Path, items: dict[bytes, bytes]) -> Path:
    import lmdb

    folder.mkdir(parents=True)
    env = lmdb.open(str(folder), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, value in items.items():
            txn.put(key, value)
    env.close()
    return folder


def _lsun_spec(root: Path, **kwargs) -> DatasetSpec:
    return DatasetSpec(format="lsun_lmdb", path=str(root), resolution=4, classes=("bedroom", "tower"), n=2,
                       **kwargs)


def _lsun(root: Path, *, count: int = 2) -> Path:
    rng = np.random.default_rng(8)
    for name in ("bedroom", "tower"):
        _lmdb_export(root / f"{name}_train_lmdb", {f"{name}-{i}".encode(): _webp(rng, 8, 8)
                                                   for i in range(count)})
    return root


def test_paths_lsun_export_link_outside_is_refused(tmp_path):
    root = _lsun(tmp_path / "l")
    (root / "tower_train_lmdb").rename(tmp_path / "tower_train_lmdb")
    (root / "tower_train_lmdb").symlink_to(tmp_path / "tower_train_lmdb", target_is_directory=True)
    got = outcome(lambda: _prepare(_lsun_spec(root)))
    assert got.refused(root / "tower_train_lmdb") and "outside" in got.message, got


def test_paths_tar_sparse_member_is_refused(tmp_path):
    # 3 GiB of holes: GNU tar stores it in a few kB; the reader must not expand it
    batches = tmp_path / "src" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for i in range(1, 6):
        with open(batches / f"data_batch_{i}", "wb") as fh:
            fh.truncate(3 << 30)
    archive = tmp_path / "c.tar.gz"
    subprocess.run(["tar", "--sparse", "-czf", str(archive), "-C", str(tmp_path / "src"),
                    "cifar-10-batches-py"], check=True)
    assert archive.stat().st_size < 64 << 10
    got = outcome(lambda: _prepare(_cifar_spec(archive)), memory=1 << 30)
    assert got.refused(archive) and "sparse" in got.message, got


def test_paths_tar_member_bounded_by_the_archive_size(tmp_path):
    # 200 MB of zeros compress to 200 kB: far beyond what a CIFAR-10 tarball expands to (1.14x)
    blob = pickle.dumps({"data": np.zeros((65_000, 3072), np.uint8), "labels": [3] * 65_000}, protocol=4)
    members = [(f"cifar-10-batches-py/data_batch_{i}", blob) for i in range(1, 6)]
    archive = _tar(tmp_path / "c.tar.gz", members)
    assert archive.stat().st_size < (len(blob) * 5) // 100

    def read_with_peak():
        tracemalloc.start()
        try:
            _prepare(_cifar_spec(archive))
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < 64 << 20, f"peak {peak} bytes"

    got = outcome(read_with_peak)
    assert got.refused(archive), got


# ---------------------------------------------------------------- decoders that are not ours
def _sigbus_lmdb(folder: Path) -> Path:
    """An export whose newest meta page puts the root page 350 MiB past the end of the 12 kB file."""
    _lmdb_export(folder, {b"k%02d" % i: b"v" * 100 for i in range(20)})
    blob = bytearray((folder / "data.mdb").read_bytes())
    meta = 4096 + 16  # the second meta page (transaction 1), after its 16-byte page header
    struct.pack_into("<Q", blob, meta + 16, 1 << 30)  # map size
    struct.pack_into("<Q", blob, meta + 24 + 48 + 40, 90_000)  # main database root page
    struct.pack_into("<Q", blob, meta + 24 + 96, 100_000)  # last page
    (folder / "data.mdb").write_bytes(bytes(blob))
    return folder


def test_decoder_lmdb_crash_becomes_a_data_error(tmp_path):
    root = _lsun(tmp_path / "l")
    import shutil

    shutil.rmtree(root / "tower_train_lmdb")
    _sigbus_lmdb(root / "tower_train_lmdb")
    got = outcome(lambda: _prepare(_lsun_spec(root)))
    assert got.refused(root / "tower_train_lmdb"), got
    assert "SIGBUS" in got.message, got


def test_decoder_lmdb_crash_cli_exit_2(tmp_path):
    root = _lsun(tmp_path / "l")
    import shutil

    shutil.rmtree(root / "bedroom_train_lmdb")
    _sigbus_lmdb(root / "bedroom_train_lmdb")
    out = tmp_path / "results" / "subset.pt"
    spec = f'{{"format": "lsun_lmdb", "path": "{root}", "classes": ["bedroom", "tower"], "n": 2, ' \
        '"resolution": 4}'
    run = subprocess.run([sys.executable, "-m", "diffusion_regimes", "prepare-subset", "--name", "lsun",
                          "--output", str(out), "--spec", spec], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert "bedroom_train_lmdb" in run.stderr and not out.exists()


def _jpeg_segments(blob: bytes) -> list[tuple[int, int, int]]:
    """(start, end, marker) of each segment of a JPEG; a scan's entropy-coded data belongs to its SOS."""
    out, i = [], 2
    while i < len(blob):
        marker = blob[i + 1]
        if marker == 0xD9:
            out.append((i, len(blob), marker))
            break
        j = i + 2 + struct.unpack(">H", blob[i + 2:i + 4])[0]
        if marker == 0xDA:
            while not (blob[j] == 0xFF and blob[j + 1] != 0 and not 0xD0 <= blob[j + 1] <= 0xD7):
                j += 1
        out.append((i, j, marker))
        i = j
    return out


def progressive_jpeg_bomb(side: int = 4096, copies: int = 6000) -> bytes:
    """A black progressive JPEG whose smallest scan is repeated ``copies`` times: each copy is a few bytes
    and costs a pass over every block (about 0.6 ms per copy per Mpx here; the default, 4096² and 6000
    copies in about 300 kB, takes about 6 s of CPU: well past the 1-second limit the tests set, which the
    child rounds up to the next whole second of its own CPU time, so up to 2 s of decoding pass)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, "JPEG", progressive=True, quality=90)
    blob = buf.getvalue()
    segments = _jpeg_segments(blob)
    start, end, _ = min((s for s in segments if s[2] == 0xDA), key=lambda s: s[1] - s[0])
    eoi = segments[-1][0]
    return blob[:eoi] + blob[start:end] * copies + blob[eoi:]


def _folder_with(root: Path, name: str, blob: bytes) -> Path:
    rng = np.random.default_rng(9)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        (root / cls / "0.webp").write_bytes(_webp(rng, 6, 6))
    (root / "b" / "1.webp").write_bytes(_webp(rng, 6, 6))
    (root / "a" / name).write_bytes(blob)
    return root / "a" / name


def _folder_spec(root: Path, **kwargs) -> DatasetSpec:
    return DatasetSpec(format="image_folder", path=str(root), resolution=4, classes=("a", "b"), n=4,
                       **kwargs)


def test_decoder_cpu_limit_stops_a_progressive_jpeg_bomb(tmp_path):
    bomb = _folder_with(tmp_path / "d", "1.jpg", progressive_jpeg_bomb())
    assert bomb.stat().st_size < 400_000
    from diffusion_regimes.data.spec import DecoderLimits

    spec = _folder_spec(tmp_path / "d", decoder_limits=DecoderLimits(cpu_seconds=1))
    start = time.monotonic()
    got = outcome(lambda: _prepare(spec))
    assert got.refused(bomb) and "1-second CPU limit" in got.message, got
    assert time.monotonic() - start < 30


def test_decoder_wall_clock_limit_stops_a_slow_image(tmp_path):
    from diffusion_regimes.data.spec import DecoderLimits

    bomb = _folder_with(tmp_path / "d", "1.jpg", progressive_jpeg_bomb())
    spec = _folder_spec(tmp_path / "d", decoder_limits=DecoderLimits(wall_seconds=0.5))
    got = outcome(lambda: _prepare(spec))
    assert got.refused(bomb) and "0.5-second wall-clock limit" in got.message, got


def _png_bomb(side: int) -> bytes:
    """A black side x side RGB PNG: a few kB that decode to 3 side^2 bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def test_decoder_memory_limit_stops_a_png_bomb(tmp_path):
    # 7000 x 7000 = 49 Mpx is under the pixel limit but needs 147 MB decoded; the child gets 64 MB
    bomb = _folder_with(tmp_path / "d", "1.png", _png_bomb(7000))
    from diffusion_regimes.data.spec import DecoderLimits

    spec = _folder_spec(tmp_path / "d", decoder_limits=DecoderLimits(memory_mb=64))
    got = outcome(lambda: _prepare(spec))
    assert got.refused(bomb) and "64 MB memory limit" in got.message, got


def _bmp_with_bad_compression() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (10, 12)).save(buf, "BMP")
    blob = bytearray(buf.getvalue())
    struct.pack_into("<I", blob, 30, 2)  # RLE8 compression on a 24-bit image
    return bytes(blob)


def _png_with_overlong_chunk() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(10).integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(buf, "PNG")
    blob = bytearray(buf.getvalue())
    idat = blob.index(b"IDAT") - 4
    length = struct.unpack_from(">I", blob, idat)[0]
    struct.pack_into(">I", blob, idat, length - 7)  # the next "chunk type" is inside the image data
    return bytes(blob)


@pytest.mark.parametrize("kind", ["bmp", "png"])
def test_decoder_exceptions_are_data_errors(tmp_path, kind):
    blob = _bmp_with_bad_compression() if kind == "bmp" else _png_with_overlong_chunk()
    bad = _folder_with(tmp_path / "d", f"1.{kind}", blob)
    got = outcome(lambda: _prepare(_folder_spec(tmp_path / "d")))
    assert got.refused(bad), got


HOSTILE_NAME = "x\x1b[2J\x1b]0;pwned\x07\nDataError: all good\r.png"


def test_decoder_names_in_messages_are_escaped(tmp_path):
    _folder_with(tmp_path / "d", HOSTILE_NAME, b"\x89PNG\r\n\x1a\n" + b"\x1b[31m" * 10)
    got = outcome(lambda: _prepare(_folder_spec(tmp_path / "d")))
    assert got.kind == "DataError" and "x\\x1b[2J" in got.message, got
    assert not CONTROL & set(got.message), repr(got.message)


def test_decoder_lmdb_keys_in_messages_are_escaped(tmp_path):
    rng = np.random.default_rng(11)
    key = b"k\x1b[2J\x1b]0;pwned\x07\n\xff"
    for name in ("bedroom", "tower"):
        _lmdb_export(tmp_path / f"{name}_train_lmdb", {key: b"RIFF\x1b[31m" + bytes(20),
                                                       b"z": _webp(rng, 8, 8)})
    got = outcome(lambda: _prepare(_lsun_spec(tmp_path, selection="first")))
    assert got.kind == "DataError" and "bedroom_train_lmdb" in got.message, got
    assert not CONTROL & set(got.message), repr(got.message)


def test_decoder_genuine_images_read_identical_to_in_process_decoding(tmp_path):
    """The isolated decoder gives the very bytes the in-process decoding of the same files gives."""
    from PIL import Image

    rng = np.random.default_rng(12)
    root = tmp_path / "d"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i, fmt in enumerate(["PNG", "JPEG", "WEBP", "BMP"]):
            Image.fromarray(rng.integers(0, 256, (30 + i, 41, 3), dtype=np.uint8)).save(
                root / cls / f"{i}.{fmt.lower()}", fmt)
    source = sources.read_image_folder(_folder_spec(root))
    got = source.classes["a"].read(np.arange(4))
    expected = np.stack([sources.centre_crop_resize(Image.open(root / "a" / f"{i}.{f}"), 4)
                         for i, f in enumerate(["png", "jpeg", "webp", "bmp"])])
    assert got.dtype == np.uint8 and got.tobytes() == expected.tobytes()
