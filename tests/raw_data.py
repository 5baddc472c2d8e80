"""Stand-ins for the paper's raw data in their real formats, at the paths of config/paper.yaml.

Images are random fields with a 1/f amplitude spectrum (the power law of natural images), one spectral
slope and mean brightness per class, so that covariance spectra, classifiers and resizes behave as on
photographs rather than on white noise.  Used by the protocol tests and the paper rehearsal.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np


def natural_images(rng: np.random.Generator, count: int, height: int, width: int, *, channels: int = 3,
                   slope: float = 1.0, brightness: float = 0.5) -> np.ndarray:
    """uint8 ``(count, height, width, channels)`` random fields with amplitude ∝ 1/f^slope."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width)) ** slope
    amplitude[0, 0] = 0.0
    noise = rng.standard_normal((count, channels, height, width // 2 + 1)) + 1j * rng.standard_normal(
        (count, channels, height, width // 2 + 1))
    fields = np.fft.irfft2(noise * amplitude, s=(height, width))
    fields /= fields.std(axis=(1, 2, 3), keepdims=True) + 1e-12
    pixels = 255.0 * np.clip(brightness + 0.18 * fields, 0.0, 1.0)
    return np.rint(pixels).astype(np.uint8).transpose(0, 2, 3, 1)


def _two_classes(rng, per_class, height, width, channels):
    """Images of class 0 then class 1 (different slope and brightness)."""
    return [natural_images(rng, per_class, height, width, channels=channels, slope=s, brightness=b)
            for s, b in ((1.0, 0.45), (1.4, 0.55))]


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def write_mnist(folder: Path, *, per_class: int, classes=(1, 8), seed: int = 0) -> None:
    """``train-images-idx3-ubyte.gz`` and ``train-labels-idx1-ubyte.gz``: the two digits interleaved, then
    a few images of another digit (which the reader must skip)."""
    rng = np.random.default_rng(seed)
    a, b = (x[..., 0] for x in _two_classes(rng, per_class, 28, 28, 1))
    other = natural_images(rng, 4, 28, 28, channels=1)[..., 0]
    images = np.concatenate([np.stack([a, b], 1).reshape(-1, 28, 28), other])
    labels = np.array([*np.tile(classes, per_class), *[3] * 4], dtype=np.uint8)
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)


def write_cifar10(archive: Path, *, per_class: int, labels=(7, 1), seed: int = 0) -> None:
    """``cifar-10-python.tar.gz`` with five training batches and a test batch (horse = 7, automobile = 1)."""
    rng = np.random.default_rng(seed)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for name, count in [*((f"data_batch_{i}", per_class) for i in range(1, 6)), ("test_batch", 10)]:
            share = -(-count // 5) if name != "test_batch" else count
            a, b = _two_classes(rng, share, 32, 32, 3)
            data = np.stack([a, b], 1).reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2).reshape(-1, 3072)
            blob = pickle.dumps({b"batch_label": name.encode(), b"labels": list(labels) * share,
                                 b"data": data})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def write_imagenet(folder: Path, *, side: int, per_class_per_batch: int, labels=(7, 367),
                   batches=range(1, 11), seed: int = 0) -> None:
    """``train_data_batch_<i>`` pickles (rows of 3 side² bytes, 1-based labels), the two labels plus one
    other label in every batch."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in batches:
        a, b = _two_classes(rng, per_class_per_batch, side, side, 3)
        other = natural_images(rng, 2, side, side)
        images = np.concatenate([np.stack([a, b], 1).reshape(-1, side, side, 3), other])
        data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        row_labels = [*list(labels) * per_class_per_batch, 5, 5]
        with open(folder / f"train_data_batch_{i}", "wb") as fh:
            pickle.dump({"data": data, "labels": row_labels, "mean": data.mean(0)}, fh)


def write_lsun(folder: Path, *, per_class: int, classes=("church_outdoor", "conference_room"),
               size: tuple[int, int] = (256, 320), seed: int = 0) -> None:
    """``<class>_train_lmdb/`` exports of WebP images (short side 256, as LSUN's), keyed like LSUN's."""
    import lmdb
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width = size
    blocks = _two_classes(rng, per_class, height, width, 3)
    for name, images in zip(classes, blocks, strict=True):
        export = folder / f"{name}_train_lmdb"
        export.mkdir(parents=True, exist_ok=True)
        env = lmdb.open(str(export), map_size=1 << 30)
        with env.begin(write=True) as txn:
            for i, image in enumerate(images):
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, format="WEBP", quality=90)
                txn.put(f"{i:040x}".encode(), buf.getvalue())
        env.close()


def write_paper_raw_data(root: Path, *, per_class: int = 100, lsun_per_class: int = 100) -> None:
    """Every raw file config/paper.yaml reads, under ``root/resources``."""
    resources = root / "resources"
    write_mnist(resources / "mnist", per_class=per_class)
    write_cifar10(resources / "cifar10" / "cifar-10-python.tar.gz", per_class=per_class)
    per_batch = -(-per_class // 9)
    write_imagenet(resources / "imagenet16", side=16, per_class_per_batch=per_batch)
    write_imagenet(resources / "imagenet32", side=32, per_class_per_batch=per_batch, seed=1)
    write_lsun(resources / "lsun", per_class=lsun_per_class)
    write_resnet18_weights(resources / "resnet18-f37072fd.pth")


def resnet18_state(*, seed: int = 0, random_statistics: bool = False) -> dict:
    """A state dict with the 122 keys and shapes of torchvision's ``resnet18()`` (written out by hand:
    torchvision is not a dependency): He-initialised convolutions; BatchNorm affine parameters and running
    statistics at their identity values, or random (``random_statistics``: every tensor distinct, for tests
    that check which tensor went where)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state: dict = {}

    def conv(name: str, c_out: int, c_in: int, k: int) -> None:
        scale = (2.0 / (c_in * k * k)) ** 0.5
        state[f"{name}.weight"] = torch.randn(c_out, c_in, k, k, generator=gen) * scale

    def bn(name: str, c: int) -> None:
        if random_statistics:
            state.update({f"{name}.weight": torch.rand(c, generator=gen) + 0.5,
                          f"{name}.bias": torch.randn(c, generator=gen),
                          f"{name}.running_mean": torch.randn(c, generator=gen),
                          f"{name}.running_var": torch.rand(c, generator=gen) + 0.5,
                          f"{name}.num_batches_tracked": torch.tensor(7)})
        else:
            state.update({f"{name}.weight": torch.ones(c), f"{name}.bias": torch.zeros(c),
                          f"{name}.running_mean": torch.zeros(c), f"{name}.running_var": torch.ones(c),
                          f"{name}.num_batches_tracked": torch.tensor(0)})

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    width = 64
    for layer, (c, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
        for block in (0, 1):
            c_in = width if block == 0 else c
            prefix = f"layer{layer}.{block}"
            conv(f"{prefix}.conv1", c, c_in, 3)
            bn(f"{prefix}.bn1", c)
            conv(f"{prefix}.conv2", c, c, 3)
            bn(f"{prefix}.bn2", c)
            if block == 0 and (stride != 1 or c_in != c):
                conv(f"{prefix}.downsample.0", c, c_in, 1)
                bn(f"{prefix}.downsample.1", c)
        width = c
    state["fc.weight"] = torch.randn(1000, 512, generator=gen) * 512 ** -0.5
    state["fc.bias"] = torch.randn(1000, generator=gen) if random_statistics else torch.zeros(1000)
    assert len(state) == 122  # torchvision's resnet18().state_dict() has 122 entries
    return state


def write_resnet18_weights(path: Path, *, seed: int = 0) -> None:
    """A stand-in for torchvision's ``resnet18-f37072fd.pth`` (``resnet18_state``), so that the
    pretrained-classifier path runs exactly as with the real file."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(resnet18_state(seed=seed), path)
