"""The prepared two-class subset every trained or sampled model uses (docs/science.md section 4).

A :class:`PreparedSubset` holds n images of two balanced classes, pixels in [0, 1] then centred per
channel, ordered so that classes alternate (label 0, 1, 0, 1, ...): every even-length prefix is balanced,
which is how other stages sweep n.  It is stored as a tensor file (``subset.pt``, loaded with
``weights_only=True``) plus a JSON record (dataset, classes, source indices, channel means, checksums).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from diffusion_regimes.data.freshness import check_fresh
from diffusion_regimes.errors import DataError
from diffusion_regimes.provenance import save_torch, write_json

__all__ = ["PreparedSubset", "json_path_for"]


def json_path_for(path: str | Path) -> Path:
    """``results/data/x/subset.pt`` -> ``results/data/x/subset.json``."""
    return Path(path).with_suffix(".json")


@dataclass(frozen=True)
class PreparedSubset:
    """Two balanced classes, centred per channel.

    images: (n, C, H, W) float32, ``pixel/255 - channel_means[c]``; labels: (n,) int64 in {0, 1},
    alternating 0, 1, 0, 1, ...; channel_means: (C,) float64; indices: source index of each image
    (position in the source file/archive, as a string for LMDB keys or file names).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, str]
    channel_means: torch.Tensor
    dataset: str
    indices: tuple[Any, ...]
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    # the dataset's official test split for these two classes (alternating labels, same centring), or None
    held_out_images: torch.Tensor | None = field(default=None, compare=False)
    held_out_labels: torch.Tensor | None = field(default=None, compare=False)

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def d(self) -> int:
        c, h, w = self.shape
        return c * h * w

    def flat(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """(n, d) view of the centred images in ``dtype`` (float64 for covariances, docs/science.md
        section 2)."""
        return self.images.reshape(self.n, -1).to(dtype)

    def to_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Add the channel means back: (..., C, H, W) centred -> pixels in [0, 1] (for display)."""
        means = self.channel_means.to(images.dtype).to(images.device)
        return images + means.reshape(-1, 1, 1)

    def pooled(self, side: int) -> PreparedSubset:
        """The same images at ``side`` x ``side`` by area pooling (mean over each block of pixels).

        ``side`` must divide the stored side (32 -> 16, 8).  Pooling is linear, so the channel means and
        the centring carry over unchanged; d drops by the block area, and the covariance becomes that of
        block averages (its top eigenvalue Λ, and with it t_S, changes: each resolution is a data set of
        its own).  For the collapse law over (n, d) on real data.
        """
        _, _, h, w = self.images.shape
        if side < 1 or h % side or w % side or h // side != w // side:
            raise DataError(f"cannot pool {h}x{w} images to {side}x{side}: the side must divide {h}")
        block = h // side
        def pool(x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.avg_pool2d(x.to(torch.float64), block).to(x.dtype).contiguous()

        metadata = {**self.metadata, "pooled_from": [h, w], "pooling": f"area mean of {block}x{block}"}
        held = None if self.held_out_images is None else pool(self.held_out_images)
        return dataclasses.replace(self, images=pool(self.images), metadata=metadata, held_out_images=held)

    def prefix(self, n: int) -> PreparedSubset:
        """The first ``n`` images (balanced when n is even, since classes alternate).

        The channel means stay those of the full subset, so prefixes share one pixel scale.
        """
        if not 1 <= n <= self.n:
            raise DataError(f"prefix of {n} images requested from a subset of {self.n}")
        return dataclasses.replace(
            self, images=self.images[:n], labels=self.labels[:n], indices=self.indices[:n]
        )

    def save(self, path: str | Path) -> None:
        """Write ``path`` (tensors) and its JSON record beside it, both atomically."""
        path = Path(path)
        spec = self.metadata.get("spec", {})
        seed = spec.get("seed") if isinstance(spec, dict) else None
        tensors = {"images": self.images.contiguous(), "labels": self.labels,
                   "channel_means": self.channel_means}
        if self.held_out_images is not None:
            tensors |= {"held_out_images": self.held_out_images.contiguous(),
                        "held_out_labels": self.held_out_labels}
        save_torch(tensors, path, config={"dataset": self.dataset, "spec": spec}, seed=seed)
        record = {
            **self.metadata,
            "dataset": self.dataset,
            "classes": list(self.classes),
            "n": self.n,
            "shape": list(self.shape),
            "channel_means": self.channel_means.tolist(),
            "indices": list(self.indices),
        }
        write_json(json_path_for(path), record, config={"dataset": self.dataset, "spec": spec}, seed=seed)

    @classmethod
    def load(cls, path: str | Path) -> PreparedSubset:
        """Read a subset written by :meth:`save` (tensor file + JSON record)."""
        path = Path(path)
        meta_path = json_path_for(path)
        for p in (path, meta_path):
            if not p.is_file():
                raise DataError(f"prepared subset file missing: {p} (run the prepare_subset rule)")
        meta = json.loads(meta_path.read_text())
        # Subsets prepared before raw files were recorded carry no "source_files": nothing to compare.
        check_fresh(meta.get("source_files", {}), subset=path)
        tensors = torch.load(path, weights_only=True)
        known = {"dataset", "classes", "n", "shape", "channel_means", "indices"}
        return cls(
            images=tensors["images"],
            labels=tensors["labels"],
            classes=tuple(meta["classes"]),  # type: ignore[arg-type]
            channel_means=tensors["channel_means"],
            dataset=meta["dataset"],
            indices=tuple(meta["indices"]),
            metadata={k: v for k, v in meta.items() if k not in known},
            held_out_images=tensors.get("held_out_images"),
            held_out_labels=tensors.get("held_out_labels"),
        )
