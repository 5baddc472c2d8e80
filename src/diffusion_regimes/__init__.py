"""Reference reproduction of *Dynamical regimes of diffusion models* (Biroli et al., 2024).

The package holds the science (schedules, theory, scores, samplers, estimators, models); the
Snakemake workflow in ``workflow/`` only wires files together by calling :mod:`diffusion_regimes.cli`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("diffusion-regimes")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
