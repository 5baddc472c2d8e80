"""Property-based fuzzing of every reader: genuine fixtures of each format, mutated.

Each example takes a genuine file of one format (a pickled CIFAR-10 or ImageNet batch, a CIFAR-10 tar
archive, an IDX file raw or gzip, an LSUN LMDB export, an image of each codec), applies a few mutations
(bytes flipped or set, big-endian fields set to edge values, bytes inserted, ranges deleted or repeated,
truncation; for pickles also one opcode replaced by another), and reads it with the real reader in a forked
child (``outcome``: address space capped at 1 GiB above the child's start, 120 s wall clock).  The property:
the reader returns images of exactly the shape and dtype the format defines, or raises a DataError; never
a crash, another exception, a hang or a memory blow-up.

Two profiles (docs/security.md): the default run uses ``SHORT`` (derandomized, so CI sees the same inputs
every time, about a minute in all); ``-m slow`` runs the same properties with ``LONG``.
"""

from __future__ import annotations

import gzip
import io
import pickle
import pickletools
import shutil
import struct
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from diffusion_regimes.data import DatasetSpec, sources
from tests.test_hostile_files import outcome
from tests.test_untrusted_input import _py2_pickle

COMMON = dict(derandomize=True, database=None, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# examples per property: (in-process readers, readers that start decoder children)
SHORT = {"fast": settings(max_examples=60, **COMMON), "child": settings(max_examples=8, **COMMON)}
LONG = {"fast": settings(max_examples=600, **COMMON), "child": settings(max_examples=60, **COMMON)}
MEMORY = 1 << 30
SECONDS = 120.0

# ---------------------------------------------------------------- mutations
EDGE_INTS = [0, 1, 2, 255, 256, 0x7F, 0x80, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
_at = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), _at, st.integers(1, 255)),
    st.tuples(st.just("set"), _at, st.integers(0, 255)),
    st.tuples(st.just("int32"), _at, st.sampled_from(EDGE_INTS)),
    st.tuples(st.just("insert"), _at, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _at, st.integers(1, 64)),
    st.tuples(st.just("repeat"), _at, st.integers(1, 64)),
    st.tuples(st.just("truncate"), _at, st.just(0)),
)


def mutate(blob: bytes, mutations: list[tuple]) -> bytes:
    """``blob`` with each mutation applied in turn; positions are fractions of the current length."""
    out = bytearray(blob)
    for kind, where, arg in mutations:
        at = int(where * len(out)) if out else 0
        if kind == "flip" and out:
            out[at] ^= arg
        elif kind == "set" and out:
            out[at] = arg
        elif kind == "int32":
            out[at:at + 4] = struct.pack(">I", arg)
        elif kind == "insert":
            out[at:at] = arg
        elif kind == "delete":
            del out[at:at + arg]
        elif kind == "repeat":
            out[at:at] = out[at:at + arg]
        elif kind == "truncate":
            del out[at:]
    return bytes(out)


_OPCODES = [op.code.encode("latin1") for op in pickletools.opcodes]


@st.composite
def pickle_mutations(draw, blob: bytes) -> bytes:
    """Opcode substitutions (one opcode byte replaced by another) and byte mutations of a pickle."""
    positions = [pos for _, _, pos in pickletools.genops(blob)]
    out = bytearray(blob)
    for _ in range(draw(st.integers(0, 3))):
        out[draw(st.sampled_from(positions))] = draw(st.sampled_from(_OPCODES))[0]
    return mutate(bytes(out), draw(st.lists(MUTATION, max_size=3)))


# ---------------------------------------------------------------- genuine fixtures
def _batch(rng: np.random.Generator, n: int, row: int, labels: range) -> dict:
    data = rng.integers(0, 256, (n, row), dtype=np.uint8)
    return {"data": data, "labels": [int(v) for v in rng.integers(labels.start, labels.stop, n)],
            "batch_label": "training batch 1 of 5", "mean": data.mean(0)}


RNG = np.random.default_rng(2026)
CIFAR_BATCH = {"py2": _py2_pickle(_batch(RNG, 4, 3072, range(10))),
               "protocol2": pickle.dumps(_batch(RNG, 4, 3072, range(10)), protocol=2)}
IMAGENET_BATCH = {"protocol5": pickle.dumps(_batch(RNG, 6, 3 * 8 * 8, range(1, 4)), protocol=5),
                  "protocol4": pickle.dumps(_batch(RNG, 6, 3 * 8 * 8, range(1, 4)), protocol=4)}


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(1, 6):
            blob = pickle.dumps(_batch(RNG, 2, 3072, range(10)), protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{i}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


CIFAR_TAR = _tar_bytes()


def _idx(array: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.astype(np.uint8).tobytes()


IDX_IMAGES = _idx(RNG.integers(0, 256, (6, 28, 28)))
IDX_LABELS = _idx(np.array([1, 2, 1, 2, 1, 2]))


def _image(fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    pixels = RNG.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, fmt, **({"progressive": True} if fmt == "JPEG" else {}))
    return buf.getvalue()


IMAGES = {fmt: _image(fmt) for fmt in ("PNG", "JPEG", "WEBP", "BMP")}


def _lmdb_bytes() -> bytes:
    import lmdb

    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(tmp, map_size=1 << 20)
        with env.begin(write=True) as txn:
            for i in range(3):
                txn.put(f"bedroom-{i:03d}".encode(), IMAGES["WEBP"])
        env.close()
        return (Path(tmp) / "data.mdb").read_bytes()


LMDB = _lmdb_bytes()


# ---------------------------------------------------------------- the property
def _read_all(reader: Callable[[DatasetSpec], sources.Source], spec: DatasetSpec) -> tuple:
    """Every image of every class the reader finds, checked against the format's shape; the shapes."""
    source = reader(spec)
    shapes = []
    for name, cls in source.classes.items():
        images = cls.read(np.arange(cls.count))
        assert isinstance(images, np.ndarray) and images.dtype == np.uint8, name
        assert images.shape == (cls.count, *EXPECTED[spec.format]), (name, images.shape)
        shapes.append(images.shape)
    return tuple(shapes)


EXPECTED = {"cifar10": (3, 32, 32), "imagenet": (3, 8, 8), "mnist_idx": (1, 32, 32), "lsun_lmdb": (3, 4, 4),
            "image_folder": (3, 4, 4)}


def holds(write: Callable[[Path], DatasetSpec]) -> None:
    """The property: ``write(folder)`` lays out the mutated input and returns its spec; reading it gives
    the format's images or a DataError, in a child with bounded memory and time."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        spec = write(folder)
        reader = sources_reader(spec.format)
        got = outcome(lambda: _read_all(reader, spec), timeout=SECONDS, memory=MEMORY)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    event(f"outcome: {got.kind}")
    assert got.kind in ("ok", "DataError"), got


def sources_reader(fmt: str) -> Callable[[DatasetSpec], sources.Source]:
    from diffusion_regimes.data.registry import reader

    return reader(fmt)


def _cifar_folder(blob: bytes) -> Callable[[Path], DatasetSpec]:
    def write(folder: Path) -> DatasetSpec:
        batches = folder / "cifar-10-batches-py"
        batches.mkdir()
        (batches / "data_batch_1").write_bytes(blob)
        for i in range(2, 6):
            (batches / f"data_batch_{i}").write_bytes(CIFAR_BATCH["protocol2"])
        return DatasetSpec(format="cifar10", path=str(folder), classes=("cat", "dog"), n=2)

    return write


def _imagenet(blob: bytes) -> Callable[[Path], DatasetSpec]:
    def write(folder: Path) -> DatasetSpec:
        (folder / "train_data_batch_1").write_bytes(blob)
        return DatasetSpec(format="imagenet", path=str(folder), resolution=8, classes=("1", "2"), n=2)

    return write


def _cifar_tar(blob: bytes, gzipped: bool) -> Callable[[Path], DatasetSpec]:
    def write(folder: Path) -> DatasetSpec:
        path = folder / ("c.tar.gz" if gzipped else "c.tar")
        path.write_bytes(gzip.compress(blob, mtime=0) if gzipped else blob)
        return DatasetSpec(format="cifar10", path=str(path), classes=("cat", "dog"), n=2)

    return write


def _mnist(images: bytes, labels: bytes, gzipped: bool) -> Callable[[Path], DatasetSpec]:
    def write(folder: Path) -> DatasetSpec:
        suffix = ".gz" if gzipped else ""
        for stem, blob in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
            (folder / f"{stem}{suffix}").write_bytes(gzip.compress(blob, mtime=0) if gzipped else blob)
        return DatasetSpec(format="mnist_idx", path=str(folder), classes=("1", "2"), n=2)

    return write


def _lsun(blob: bytes) -> Callable[[Path], DatasetSpec]:
    def write(folder: Path) -> DatasetSpec:
        for name, data in (("bedroom", blob), ("tower", LMDB)):
            (folder / f"{name}_train_lmdb").mkdir()
            (folder / f"{name}_train_lmdb" / "data.mdb").write_bytes(data)
        return DatasetSpec(format="lsun_lmdb", path=str(folder), resolution=4, classes=("bedroom", "tower"),
                           n=2)

    return write


def _image_folder(blob: bytes, fmt: str) -> Callable[[Path], DatasetSpec]:
    def write(folder: Path) -> DatasetSpec:
        for name in ("a", "b"):
            (folder / name).mkdir()
        (folder / "a" / f"0.{fmt.lower()}").write_bytes(blob)
        (folder / "b" / "0.webp").write_bytes(IMAGES["WEBP"])
        return DatasetSpec(format="image_folder", path=str(folder), resolution=4, classes=("a", "b"), n=2)

    return write


# ---------------------------------------------------------------- the fuzz tests, one per reader and profile
def _mutations() -> st.SearchStrategy:
    return st.lists(MUTATION, min_size=1, max_size=4)


def fuzz_pickles(write: Callable[[bytes], Callable], fixtures: dict[str, bytes]) -> Callable:
    """The fuzzer of a pickle reader: opcode and byte mutations of each genuine batch in ``fixtures``."""

    def make(profile: dict) -> Callable:
        @profile["fast"]
        @given(version=st.sampled_from(sorted(fixtures)), data=st.data())
        def run(version: str, data: st.DataObject) -> None:
            holds(write(data.draw(pickle_mutations(fixtures[version]))))

        return run

    return make


def fuzz_cifar_tar(profile: dict) -> Callable:
    @profile["fast"]
    @given(mutations=_mutations(), gzipped=st.booleans())
    def run(mutations: list, gzipped: bool) -> None:
        holds(_cifar_tar(mutate(CIFAR_TAR, mutations), gzipped))

    return run


def fuzz_idx(profile: dict) -> Callable:
    @profile["fast"]
    @given(mutations=_mutations(), labels=st.booleans(), gzipped=st.booleans())
    def run(mutations: list, labels: bool, gzipped: bool) -> None:
        images, label_bytes = (IDX_IMAGES, mutate(IDX_LABELS, mutations)) if labels else \
            (mutate(IDX_IMAGES, mutations), IDX_LABELS)
        holds(_mnist(images, label_bytes, gzipped))

    return run


def fuzz_lsun(profile: dict) -> Callable:
    @profile["child"]
    @given(mutations=st.lists(MUTATION, min_size=1, max_size=6))
    def run(mutations: list) -> None:
        holds(_lsun(mutate(LMDB, mutations)))

    return run


def fuzz_images(profile: dict) -> Callable:
    @profile["child"]
    @given(fmt=st.sampled_from(sorted(IMAGES)), mutations=_mutations())
    def run(fmt: str, mutations: list) -> None:
        holds(_image_folder(mutate(IMAGES[fmt], mutations), fmt))

    return run


FUZZERS = {"cifar_folder": fuzz_pickles(_cifar_folder, CIFAR_BATCH),
           "imagenet": fuzz_pickles(_imagenet, IMAGENET_BATCH), "cifar_tar": fuzz_cifar_tar,
           "idx": fuzz_idx, "lsun_lmdb": fuzz_lsun, "image_folder": fuzz_images}


@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_short(reader):
    FUZZERS[reader](SHORT)()


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_long(reader):
    FUZZERS[reader](LONG)()


def test_fixtures_are_genuine():
    """Unmutated, every fixture reads to the format's images (a DataError in the fuzz is the mutation's)."""
    for write in (_cifar_folder(CIFAR_BATCH["py2"]), _imagenet(IMAGENET_BATCH["protocol5"]),
                  _cifar_tar(CIFAR_TAR, True), _cifar_tar(CIFAR_TAR, False),
                  _mnist(IDX_IMAGES, IDX_LABELS, True),
                  _lsun(LMDB), *(_image_folder(blob, fmt) for fmt, blob in IMAGES.items())):
        folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
        try:
            spec = write(folder)
            got = outcome(lambda spec=spec: _read_all(sources_reader(spec.format), spec), timeout=SECONDS)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        assert got.kind == "ok", (spec.format, got)
