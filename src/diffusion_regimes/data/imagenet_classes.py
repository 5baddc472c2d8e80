"""Class names of downsampled ImageNet (Chrabaszcz et al. 2017) for the paper's pairs (docs/science.md
section 4).

The pickles store 1-based labels in the order of the ILSVRC devkit's ``map_clsloc.txt`` (``wnid label
name`` per line), not the alphabetical-wnid order torchvision uses.  Only the classes whose label we
could check are shipped; any other class works by giving ``label_map: path/to/map_clsloc.txt`` (or the
1-based label itself as the class name).
"""

from __future__ import annotations

# name -> (WordNet id, 1-based label in map_clsloc.txt order, or None when not verified here).
IMAGENET_CLASSES: dict[str, tuple[str, int | None]] = {
    "lesser_panda": ("n02509815", 7),
    "seashore": ("n09428293", None),
}


def imagenet_names() -> dict[str, int]:
    """{name: label} for the shipped classes with a known label, plus ``"1"`` ... ``"1000"``."""
    names = {str(i): i for i in range(1, 1001)}
    names.update({name: label for name, (_, label) in IMAGENET_CLASSES.items() if label is not None})
    return names
