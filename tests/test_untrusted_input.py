"""Every reader against crafted input: data files must not run code or allocate beyond what they hold.

Each test builds its hostile file in the real on-disk format and checks the reader refuses it with a
DataError naming the file, before the side effect or the allocation happens (docs/security.md).
"""

from __future__ import annotations

import ast
import builtins
import gzip
import io
import os
import pickle
import pickletools
import re
import struct
import subprocess
import sys
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from diffusion_regimes.data import DatasetSpec, prepare_subset, sources
from diffusion_regimes.data.safe_pickle import load_batch
from diffusion_regimes.errors import DataError
from tests.test_data import _cifar_tarball, _webp, _write_idx

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "diffusion_regimes"


# ---------------------------------------------------------------- pickle builders
class _Gadget:
    """An object whose unpickling calls ``func(*args)``: what an attacker plants in a batch."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _gadgets(marker: Path) -> dict[str, _Gadget]:
    """Ways to create ``marker`` on unpickling, each through a different global."""
    from numpy.testing._private.utils import runstring

    touch = f"open({str(marker)!r}, 'w').close()"
    return {
        "posix.system": _Gadget(os.system, f"touch {marker}"),
        "builtins.exec": _Gadget(builtins.exec, touch),
        "subprocess.call": _Gadget(subprocess.call, ["touch", str(marker)]),
        # A gadget inside NumPy itself: an allow-list by module prefix ("numpy.*") would let it through.
        "numpy.testing._private.utils.runstring": _Gadget(runstring, touch, {}),
    }


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes what Python 2's cPickle wrote for a NumPy 1.x batch: ``str`` as BINSTRING (no
    ``_codecs.encode``), the ``numpy.core`` module names, and dtype flags as integers."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def save_int_bool(self, obj: bool) -> None:
        self.save_long(int(obj))

    def save_global(self, obj, name=None) -> None:
        module = {"numpy._core.multiarray": "numpy.core.multiarray"}.get(obj.__module__, obj.__module__)
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str
    dispatch[bool] = save_int_bool
    dispatch[type] = save_global


def _py2_pickle(obj: dict) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _globals_of(blob: bytes) -> set[str]:
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(blob) if op.name == "GLOBAL"}


def _batch(rng: np.random.Generator, n: int, *, row: int) -> dict:
    return {"data": rng.integers(0, 256, (n, row), dtype=np.uint8), "labels": [int(v) for v in
            rng.integers(1, 11, n)], "mean": rng.random(row)}


PROTOCOLS = ["py2", 0, 2, 4, 5]


def _dumps(obj: dict, protocol: str | int) -> bytes:
    return _py2_pickle(obj) if protocol == "py2" else pickle.dumps(obj, protocol=protocol)


def _cifar_folder(folder: Path, batches: list[bytes]) -> Path:
    (folder / "cifar-10-batches-py").mkdir(parents=True)
    for i, blob in enumerate(batches, start=1):
        (folder / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(blob)
    return folder


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def _cifar_spec(path: Path) -> DatasetSpec:
    return DatasetSpec(format="cifar10", path=str(path), classes=("cat", "dog"), n=2)


# ---------------------------------------------------------------- genuine batches still load
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_genuine_batches_load_byte_identical(protocol):
    rng = np.random.default_rng(0)
    batch = _batch(rng, 7, row=3 * 8 * 8)
    blob = _dumps(batch, protocol)
    if protocol == "py2":  # the fixture really has Python 2's form
        assert _globals_of(blob) == {"numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}
        assert any(op.name == "BINSTRING" for op, _, _ in pickletools.genops(blob))
    loaded = load_batch(blob, where="batch")
    assert set(loaded) == {"data", "labels", "mean"} and loaded["labels"] == batch["labels"]
    for key in ("data", "mean"):
        assert loaded[key].dtype == batch[key].dtype and loaded[key].shape == batch[key].shape
        assert loaded[key].tobytes() == batch[key].tobytes()


@pytest.mark.parametrize("protocol", ["py2", 2, 5])
def test_genuine_cifar_and_imagenet_read_through_the_readers(tmp_path, protocol):
    rng = np.random.default_rng(1)
    batches = [_batch(rng, 6, row=3072) for _ in range(5)]
    for b in batches:
        b["labels"] = [3, 5] * 3  # cat, dog
    folder = _cifar_folder(tmp_path / "cifar", [_dumps(b, protocol) for b in batches])
    source = sources.read_cifar10(_cifar_spec(folder))
    cats = source.classes["cat"].read(np.arange(15))
    expected = np.concatenate([b["data"][0::2] for b in batches]).reshape(-1, 3, 32, 32)
    assert cats.tobytes() == expected.tobytes()

    (tmp_path / "inet").mkdir()
    for i, b in enumerate(batches[:2], start=1):
        (tmp_path / "inet" / f"train_data_batch_{i}").write_bytes(_dumps(b, protocol))
    source = sources.read_imagenet(DatasetSpec(format="imagenet", path=str(tmp_path / "inet"), resolution=32,
                                               classes=("3", "5"), n=2))
    dogs = source.classes["5"].read(np.arange(6))
    assert dogs.tobytes() == np.concatenate([b["data"][1::2] for b in batches[:2]]).tobytes()


# ---------------------------------------------------------------- malicious pickles refused, no side effect
@pytest.mark.parametrize("gadget", ["posix.system", "builtins.exec", "subprocess.call",
                                    "numpy.testing._private.utils.runstring"])
@pytest.mark.parametrize("layout", ["cifar_tarball", "cifar_folder", "imagenet"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, layout, gadget):
    marker = tmp_path / "pwned"
    rng = np.random.default_rng(2)
    evil = _batch(rng, 4, row=3072)
    evil["extra"] = _gadgets(marker)[gadget]
    # Protocol 2 as CIFAR-10's own batches; fix_imports=False keeps Python 3's module names in the pickle.
    blob = pickle.dumps(evil, protocol=2, fix_imports=False)
    assert gadget in _globals_of(blob)
    if layout == "cifar_tarball":
        members = [(f"cifar-10-batches-py/data_batch_{i}", blob) for i in range(1, 6)]
        path = _tar(tmp_path / "c.tar.gz", members)
        where, spec = f"{path}:cifar-10-batches-py/data_batch_1", _cifar_spec(path)
    elif layout == "cifar_folder":
        path = _cifar_folder(tmp_path / "c", [blob] * 5)
        where, spec = str(path / "cifar-10-batches-py" / "data_batch_1"), _cifar_spec(path)
    else:
        (tmp_path / "inet").mkdir()
        (tmp_path / "inet" / "train_data_batch_1").write_bytes(blob)
        where = str(tmp_path / "inet" / "train_data_batch_1")
        spec = DatasetSpec(format="imagenet", path=str(tmp_path / "inet"), resolution=32, classes=("1", "2"),
                           n=2)
    refused = f"{where}: refused to unpickle global {gadget} -- "
    with pytest.raises(DataError, match=f"^{re.escape(refused)}"):
        prepare_subset(spec, name="evil")
    assert not marker.exists()


def test_prepare_subset_cli_fails_on_a_malicious_batch(tmp_path):
    """The reported case: a CIFAR-10 batch carrying os.system made `prepare-subset` run it and succeed."""
    marker = tmp_path / "pwned"
    evil = _batch(np.random.default_rng(8), 4, row=3072)
    evil["extra"] = _gadgets(marker)["posix.system"]
    blob = pickle.dumps(evil, protocol=2, fix_imports=False)
    path = _tar(tmp_path / "c.tar.gz", [(f"cifar-10-batches-py/data_batch_{i}", blob) for i in range(1, 6)])
    out = tmp_path / "results" / "subset.pt"
    spec = f'{{"format": "cifar10", "path": "{path}", "classes": ["cat", "dog"], "n": 2}}'
    run = subprocess.run([sys.executable, "-m", "diffusion_regimes", "prepare-subset", "--name", "cifar10",
                          "--output", str(out), "--spec", spec], capture_output=True, text=True)
    assert run.returncode == 2 and "refused to unpickle global posix.system" in run.stderr
    assert not marker.exists() and not out.exists() and not out.with_suffix(".json").exists()


def test_the_gadget_would_have_run(tmp_path):
    """Control for the test above: plain pickle.loads does create the marker (in a child process)."""
    marker = tmp_path / "pwned"
    blob = pickle.dumps({"data": b"", "extra": _gadgets(marker)["posix.system"]}, protocol=2)
    (tmp_path / "blob").write_bytes(blob)
    code = f"import pickle, pathlib; pickle.loads(pathlib.Path({str(tmp_path / 'blob')!r}).read_bytes())"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert marker.exists()


def test_codecs_encode_only_latin1():
    blob = pickle.dumps({"data": _Gadget(__import__("_codecs").encode, "x", "rot13")}, protocol=2)
    with pytest.raises(DataError, match=r"^b: refused to unpickle _codecs.encode with encoding 'rot13'"):
        load_batch(blob, where="b")


# ---------------------------------------------------------------- pickle sizes bounded by the file
def test_pickled_array_larger_than_the_file_is_refused():
    from numpy._core.multiarray import _reconstruct

    blob = pickle.dumps({"data": _Gadget(_reconstruct, np.ndarray, (10**12,), b"b")}, protocol=2)
    with pytest.raises(DataError, match=r"refused to unpickle _reconstruct with shape \(1000000000000,\) and "
                                        r"typecode b'b' \(arrays are rebuilt from their data"):
        load_batch(blob, where="b")


def test_memo_index_beyond_the_opcodes_is_refused():
    # 9 bytes asking CPython's unpickler for a memo table of 2**31 slots (16 GiB): refused unread.
    blob = pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.LONG_BINPUT + struct.pack("<I", 2**31 - 1) \
        + pickle.STOP
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"^b: cannot unpickle \(memo index 2147483647 at byte 3 after "
                                            r"only 2 opcodes\)"):
            load_batch(blob, where="b")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_non_dict_pickle_is_refused():
    with pytest.raises(DataError, match=r"^b: expected a pickled dict, got list"):
        load_batch(pickle.dumps([1, 2]), where="b")


# ---------------------------------------------------------------- IDX
def _idx_header(dims: tuple[int, ...]) -> bytes:
    return struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


def test_idx_dims_beyond_the_raw_file_are_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx_header((60000, 28, 28)) + bytes(100))
    with pytest.raises(DataError, match=r"header dims \[60000, 28, 28\] claim 47040000 bytes of data; the "
                                        r"file holds 100\); refused before reading"):
        sources.read_idx(path)


def test_idx_dims_beyond_what_gzip_can_hold_are_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_header((65535, 65535, 255)) + bytes(100)))
    claim = 65535 * 65535 * 255
    with pytest.raises(DataError, match=rf"claim {claim} bytes of data; a \d+-byte gzip file decompresses to "
                                        rf"at most 1032x that"):
        sources.read_idx(path)


def test_idx_dims_beyond_the_decompression_limit_are_refused(tmp_path):
    # 2.5 MB of incompressible bytes: 1032x of it passes the deflate bound, the 2 GiB limit does not.
    path = tmp_path / "train-images-idx3-ubyte.gz"
    noise = np.random.default_rng(3).integers(0, 256, 2_500_000, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(_idx_header((50000, 50000)) + noise, compresslevel=0))
    with pytest.raises(DataError, match=r"claim 2500000000 bytes.*and the limit is 2147483648\); refused"):
        sources.read_idx(path)


def test_idx_gzip_bomb_is_decompressed_only_as_far_as_the_header_says(tmp_path):
    # A valid 4x4 header followed by 64 MiB of zeros (64 kB compressed).
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(_idx_header((4, 4)) + bytes(16))
        for _ in range(64):
            fh.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"idx1-ubyte.gz: corrupt IDX file \(more data than the 16 "
                                            r"bytes its header announces; .*refused after reading 17 bytes"):
            sources.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # the old reader held all 64 MiB


def test_genuine_idx_still_loads(tmp_path):
    images = np.random.default_rng(4).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    _write_idx(tmp_path / "x.gz", images)
    (tmp_path / "x").write_bytes(gzip.decompress((tmp_path / "x.gz").read_bytes()))
    for name in ("x.gz", "x"):
        assert sources.read_idx(tmp_path / name).tobytes() == images.tobytes()


# ---------------------------------------------------------------- CIFAR-10 tarball
def test_tar_members_only_by_exact_name(tmp_path):
    _cifar_tarball(tmp_path / "genuine.tar.gz")
    with tarfile.open(tmp_path / "genuine.tar.gz") as tar:
        blobs = [tar.extractfile(m).read() for m in tar.getmembers()]
    # The right base names, at paths an extracting reader would write outside its folder or accept loosely.
    names = ["../../evil/data_batch_1", "/tmp/data_batch_2", "data_batch_3",
             "x/cifar-10-batches-py/data_batch_4", "cifar-10-batches-py/data_batch_5"]
    path = _tar(tmp_path / "c.tar.gz", list(zip(names, blobs, strict=True)))
    with pytest.raises(DataError, match=r"c.tar.gz: expected cifar-10-batches-py/data_batch_1, .*, found 1 "
                                        r"of them"):
        sources.read_cifar10(_cifar_spec(path))
    assert not (tmp_path.parent / "evil").exists()


def test_tar_link_member_is_refused(tmp_path):
    path = tmp_path / "c.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match=r"c.tar.gz:cifar-10-batches-py/data_batch_1: is a link or special "
                                        r"entry, not a regular file; refused"):
        sources.read_cifar10(_cifar_spec(path))


def test_tar_member_size_beyond_the_limit_is_refused(tmp_path):
    path = tmp_path / "c.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = 5 << 30  # header only: the claim is refused before any of it is read
        tar.addfile(info)
    with pytest.raises(DataError, match=r"data_batch_1: 5368709120 bytes, above the 4294967296-byte limit"):
        sources.read_cifar10(_cifar_spec(path))


def test_tar_with_too_many_members_is_refused(tmp_path):
    path = _tar(tmp_path / "c.tar.gz", [(f"junk/{i}", b"") for i in range(1001)])
    with pytest.raises(DataError, match=r"more than 1000 members or \d+ bytes \(16x the archive\) before the "
                                        r"members \['cifar-10-batches-py/data_batch_1'"):
        sources.read_cifar10(_cifar_spec(path))


def test_tar_duplicate_member_is_refused(tmp_path):
    blob = pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [3]})
    path = _tar(tmp_path / "c.tar.gz", [("cifar-10-batches-py/data_batch_1", blob)] * 2)
    with pytest.raises(DataError, match=r"data_batch_1: appears twice in the archive"):
        sources.read_cifar10(_cifar_spec(path))


# ---------------------------------------------------------------- images: pixel limit, decoders
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (8-bit RGB) followed by one tiny IDAT: the size is all a
    decoder sees before it allocates."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) \
        + chunk(b"IEND", b"")


def _image_folder(root: Path, count: int = 2) -> Path:
    rng = np.random.default_rng(5)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(count):
            (root / name / f"{i}.webp").write_bytes(_webp(rng, 6, 6))
    return root


def _folder_spec(root: Path, classes: tuple[str, str] = ("a", "b")) -> DatasetSpec:
    return DatasetSpec(format="image_folder", path=str(root), resolution=4, classes=classes, n=2)


@pytest.mark.parametrize(("width", "height", "message"), [
    (9000, 8000, r"image of 9000x8000 = 72000000 pixels, above the 67108864-pixel limit"),
    # Above twice Pillow's own threshold Pillow refuses at open; it is still reported as ours.
    (20000, 20000, r"image above the 67108864-pixel limit \(Image size \(400000000 pixels\) exceeds limit"),
])
def test_image_beyond_the_pixel_limit_is_refused(tmp_path, width, height, message):
    root = _image_folder(tmp_path / "d")
    (root / "a" / "bomb.png").write_bytes(_png_header_only(width, height))
    source = sources.read_image_folder(_folder_spec(root))
    with pytest.raises(DataError, match=f"^{re.escape(str(root / 'a' / 'bomb.png'))}: {message}"):
        source.classes["a"].read(np.array([2]))
    assert source.classes["a"].read(np.array([0])).shape == (1, 3, 4, 4)


def test_only_the_expected_image_decoders_are_used(tmp_path):
    # EPS decoding runs Ghostscript; a file named .png that is EPS must not reach that plugin.
    root = _image_folder(tmp_path / "d")
    (root / "a" / "x.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    expected = r"x.png: cannot decode image \(.*\); expected one of PNG, JPEG, WEBP, BMP"
    with pytest.raises(DataError, match=expected):
        sources.read_image_folder(_folder_spec(root)).classes["a"].read(np.array([2]))


def test_lsun_pixel_limit_and_value_bound(tmp_path, monkeypatch):
    import lmdb

    # The value bound is checked on the memory-mapped view before the copy; lowered here so that a
    # value above it stays small (the real limit, 64 MiB, would make the test write 64 MiB).
    monkeypatch.setattr(sources, "MAX_IMAGE_BYTES", 1000)
    rng = np.random.default_rng(6)
    for name in ("bedroom", "tower"):
        env = lmdb.open(str(tmp_path / f"{name}_train_lmdb"), map_size=1 << 22)
        with env.begin(write=True) as txn:
            txn.put(b"0", _webp(rng, 8, 8))
            txn.put(b"1", _png_header_only(9000, 8000))
            txn.put(b"2", _webp(rng, 40, 40))  # about 5 kB: random pixels do not compress
        env.close()
    source = sources.read_lsun_lmdb(DatasetSpec(format="lsun_lmdb", path=str(tmp_path), resolution=4,
                                                classes=("bedroom", "tower"), n=2))
    with pytest.raises(DataError, match=r"bedroom_train_lmdb\[1\]: image of 9000x8000 = 72000000 pixels"):
        source.classes["bedroom"].read(np.array([1]))
    with pytest.raises(DataError, match=r"tower_train_lmdb\[2\]: value of \d+ bytes, above the 1000-byte "
                                        r"limit for one encoded image; refused"):
        source.classes["tower"].read(np.array([2]))
    assert source.classes["tower"].read(np.array([0])).shape == (1, 3, 4, 4)


# ---------------------------------------------------------------- image folders and symbolic links
def test_symlink_out_of_the_dataset_is_refused(tmp_path):
    root = _image_folder(tmp_path / "d")
    outside = tmp_path / "secret.png"
    outside.write_bytes(_webp(np.random.default_rng(7), 6, 6))
    (root / "a" / "leak.png").symlink_to(outside)
    expected = f"{root / 'a' / 'leak.png'}: resolves to {outside.resolve()}, outside the dataset folder " \
        f"{root.resolve()}; refused"
    with pytest.raises(DataError, match=f"^{re.escape(expected)}"):
        sources.read_image_folder(_folder_spec(root))


@pytest.mark.parametrize("target", ["outside", "traversal"])
def test_class_folder_out_of_the_dataset_is_refused(tmp_path, target):
    root = _image_folder(tmp_path / "d")
    _image_folder(tmp_path / "elsewhere")
    if target == "outside":
        (root / "c").symlink_to(tmp_path / "elsewhere" / "a", target_is_directory=True)
        classes = ("c", "b")
    else:
        classes = ("../elsewhere/a", "b")
    with pytest.raises(DataError, match=r"resolves to .*elsewhere/a, outside the dataset folder"):
        sources.read_image_folder(_folder_spec(root, classes))


def test_symlink_loops_and_dangling_links_are_skipped(tmp_path):
    root = _image_folder(tmp_path / "d", count=3)
    a = root / "a"
    (a / "self.png").symlink_to(a / "self.png")
    (a / "ping.png").symlink_to(a / "pong.png")
    (a / "pong.png").symlink_to(a / "ping.png")
    (a / "gone.png").symlink_to(a / "missing.png")
    (a / "dir.png").symlink_to(a, target_is_directory=True)
    (a / "loop").symlink_to(root, target_is_directory=True)
    (a / "inside.webp").symlink_to(root / "b" / "0.webp")  # inside the dataset: followed
    source = sources.read_image_folder(_folder_spec(root))
    assert source.classes["a"].count == 4 and "a/inside.webp" in source.checksums
    assert source.classes["a"].read(np.arange(4)).shape == (4, 3, 4, 4)


# ---------------------------------------------------------------- the rule survives future changes
# Callables that unpickle (or unmarshal) what they read; each is allowed only in the form listed below.
_UNPICKLERS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
               "_pickle.Unpickler", "dill.load", "dill.loads", "joblib.load", "pandas.read_pickle",
               "marshal.load", "marshal.loads", "shelve.open", "torch.load", "numpy.load"}


def _canonical(node: ast.expr, aliases: dict[str, str]) -> str:
    """``pk.loads`` -> ``pickle.loads`` after ``import pickle as pk``; ``load`` -> ``torch.load`` after
    ``from torch import load``."""
    head, _, rest = ast.unparse(node).partition(".")
    head = aliases.get(head, head)
    return f"{head}.{rest}" if rest else head


def _load_calls(source: str, *, module: str) -> list[tuple[str, str | None]]:
    """Every use of an unpickling callable in ``source``: (``module:line: name``, why it is unsafe or
    None).  Safe: ``torch.load(..., weights_only=True)``, ``numpy.load`` without ``allow_pickle``, and
    subclassing ``pickle.Unpickler`` in the restricted unpickler's own module."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname or a.name: a.name for a in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module:
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = _canonical(base, aliases)
                if name in _UNPICKLERS:
                    why = None if module == "data/safe_pickle.py" else "subclass outside data/safe_pickle.py"
                    uses.append((f"{module}:{node.lineno}: class {node.name}({name})", why))
        if not isinstance(node, ast.Call):
            continue
        name = _canonical(node.func, aliases)
        if name not in _UNPICKLERS:
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        why: str | None = "unrestricted unpickling"
        if name == "torch.load":
            flag = keywords.get("weights_only")
            why = None if isinstance(flag, ast.Constant) and flag.value is True else "no weights_only=True"
        elif name == "numpy.load":
            flag = keywords.get("allow_pickle")
            why = None if flag is None or (isinstance(flag, ast.Constant) and flag.value is False) \
                else "allow_pickle"
        uses.append((f"{module}:{node.lineno}: {name}", why))
    return uses


def test_the_unsafe_load_check_catches_each_form():
    bad = ("import pickle, torch, numpy as np\nimport pickle as pk\nfrom pickle import loads\n"
           "from torch import load as tl\npickle.load(f)\npk.loads(b)\nloads(b)\ntorch.load(p)\n"
           "tl(p)\ntorch.load(p, weights_only=False)\ntorch.load(p, weights_only=flag)\n"
           "np.load(p, allow_pickle=True)\nclass U(pickle.Unpickler): pass\npk.Unpickler(f).load()\n")
    unsafe = [use for use, why in _load_calls(bad, module="x.py") if why]
    assert len(unsafe) == 10, unsafe
    good = ("import torch\nimport numpy\nfrom torch import load\n"
            "torch.load(p, map_location='cpu', weights_only=True)\nload(p, weights_only=True)\n"
            "numpy.load(p)\nnumpy.load(p, allow_pickle=False)\n")
    uses = _load_calls(good, module="x.py")
    assert len(uses) == 4 and all(why is None for _, why in uses)


def test_no_module_of_the_package_unpickles_unrestricted():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20 and PACKAGE / "data" / "safe_pickle.py" in files
    uses = [use for f in files for use in _load_calls(f.read_text(), module=str(f.relative_to(PACKAGE)))]
    assert [f"{use} ({why})" for use, why in uses if why] == []
    # The walk did see the package's loads: its torch.load calls and the restricted unpickler.
    assert sum("torch.load" in use for use, _ in uses) >= 5
    assert any(use.startswith("data/safe_pickle.py") for use, _ in uses)
