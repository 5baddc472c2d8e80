"""The data layer: raw readers per format, the prepared two-class subset, and its preparation.

``from diffusion_regimes.data import PreparedSubset, DatasetSpec, prepare_subset``.  The names are loaded
on first use, so that the decoder child process (:mod:`diffusion_regimes.data.isolation`) imports the
readers' helpers without PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from diffusion_regimes.data.spec import FORMATS, DatasetSpec

if TYPE_CHECKING:
    from diffusion_regimes.data.prepare import prepare_subset
    from diffusion_regimes.data.subset import PreparedSubset

__all__ = ["FORMATS", "DatasetSpec", "PreparedSubset", "prepare_subset"]


def __getattr__(name: str) -> Any:
    if name == "prepare_subset":
        from diffusion_regimes.data.prepare import prepare_subset

        return prepare_subset
    if name == "PreparedSubset":
        from diffusion_regimes.data.subset import PreparedSubset

        return PreparedSubset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
