"""The data layer: raw readers per format, the prepared two-class subset, and its preparation.

``from diffusion_regimes.data import PreparedSubset, DatasetSpec, prepare_subset``.
"""

from diffusion_regimes.data.prepare import prepare_subset
from diffusion_regimes.data.spec import FORMATS, DatasetSpec
from diffusion_regimes.data.subset import PreparedSubset

__all__ = ["FORMATS", "DatasetSpec", "PreparedSubset", "prepare_subset"]
