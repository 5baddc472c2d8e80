"""From raw images to a :class:`PreparedSubset` (docs/science.md section 4).

Two balanced classes, n/2 images each drawn without replacement by a seeded permutation (``selection:
random``) or the first n/2 of each class in file order (``selection: first``, the authors'), pixels scaled
to [0, 1] and centred per channel (one mean per colour channel over all images and pixels), classes
interleaved 0, 1, 0, 1, ... so that every even prefix is balanced.
"""

from __future__ import annotations

import numpy as np
import torch

from diffusion_regimes.config import to_dict
from diffusion_regimes.data.freshness import source_files
from diffusion_regimes.data.registry import reader
from diffusion_regimes.data.spec import DatasetSpec
from diffusion_regimes.data.subset import PreparedSubset
from diffusion_regimes.errors import ConfigError, DataError


def select_positions(count: int, k: int, *, seed: int, label: int, selection: str = "random") -> np.ndarray:
    """``k`` distinct positions ``(k,)`` out of ``count``: fixed by (seed, label) for ``selection =
    "random"``; the first ``k`` in file order for ``"first"``."""
    if selection == "first":
        return np.arange(k)
    if selection != "random":
        raise ConfigError(f"datasets.<name>.selection: {selection!r} is not valid; choose random or first")
    rng = np.random.default_rng([seed, label])
    return rng.permutation(count)[:k]


def prepare_subset(spec: DatasetSpec, *, name: str) -> PreparedSubset:
    """Read, select, scale and centre the subset named ``name`` (the config key under ``datasets:``)."""
    if spec.n < 2 or spec.n % 2:
        raise ConfigError(f"datasets.{name}.n: {spec.n} must be a positive even number "
                          "(two balanced classes)")
    if spec.format != "imagenet" and (spec.labels is not None or spec.batches is not None):
        raise ConfigError(f"datasets.{name}: `labels` and `batches` apply to format imagenet only "
                          f"(this subset has format {spec.format}); remove them")
    source = reader(spec.format)(spec)
    per_class = spec.n // 2
    counts = {c: source.classes[c].count for c in spec.classes}
    short = {c: k for c, k in counts.items() if k < per_class}
    if short:
        raise DataError(
            f"dataset {name!r}: n = {spec.n} needs {per_class} images per class, but the source has "
            f"{counts}; lower `datasets.{name}.n` to at most {2 * min(counts.values())}"
        )
    blocks, ids = [], []
    for label, cls in enumerate(spec.classes):
        pos = select_positions(counts[cls], per_class, seed=spec.seed, label=label, selection=spec.selection)
        blocks.append(source.classes[cls].read(pos))
        ids.append(source.classes[cls].ids(pos))
    if blocks[0].shape[1:] != blocks[1].shape[1:]:
        raise DataError(f"dataset {name!r}: classes have different image shapes "
                        f"{blocks[0].shape[1:]} and {blocks[1].shape[1:]}")
    # Interleave: position 2i is class 0, 2i+1 is class 1.
    raw = np.empty((spec.n, *blocks[0].shape[1:]), dtype=np.uint8)
    raw[0::2], raw[1::2] = blocks
    indices = tuple(x for pair in zip(*ids, strict=True) for x in pair)
    labels = torch.arange(spec.n, dtype=torch.int64) % 2
    pixels = torch.from_numpy(raw).to(torch.float64) / 255.0
    # Per-channel centring (docs/science.md section 4): one mean per channel, kept to show samples as images;
    # `centring: second_class` takes it over the second class's images only (the authors' MNIST quirk)
    means = (pixels[1::2] if spec.centring == "second_class" else pixels).mean(dim=(0, 2, 3))
    images = (pixels - means.reshape(1, -1, 1, 1)).to(torch.float32)
    held_images, held_labels = _held_out(source, spec, means)
    return PreparedSubset(
        images=images, labels=labels, classes=tuple(spec.classes),  # type: ignore[arg-type]
        channel_means=means, dataset=name, indices=indices,
        metadata={"spec": to_dict(spec), "source_checksums": source.checksums,
                  "source_files": source_files(spec, source.checksums), "available_per_class": counts,
                  "held_out": "official test split" if held_images is not None else None},
        held_out_images=held_images, held_out_labels=held_labels,
    )


def _held_out(source, spec: DatasetSpec,
              means: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The official test split's images of the two classes (as many of each as the smaller class has,
    alternating 0, 1, ...), scaled and centred with the training subset's channel means; ``(None, None)``
    for a source without one."""
    if source.held_out is None:
        return None, None
    per_class = min(source.held_out[c].count for c in spec.classes)
    blocks = [source.held_out[c].read(np.arange(per_class)) for c in spec.classes]
    raw = np.empty((2 * per_class, *blocks[0].shape[1:]), dtype=np.uint8)
    raw[0::2], raw[1::2] = blocks
    pixels = torch.from_numpy(raw).to(torch.float64) / 255.0
    images = (pixels - means.reshape(1, -1, 1, 1)).to(torch.float32)
    return images, torch.arange(2 * per_class, dtype=torch.int64) % 2
