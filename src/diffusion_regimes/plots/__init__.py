"""Figures.  One module per study; this file holds the shared style and the atomic PDF+PNG writer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen on compute nodes
import matplotlib.pyplot as plt  # noqa: E402

from diffusion_regimes.provenance import atomic_path, write_sidecar  # noqa: E402

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
}


def new_figure(*args: Any, **kwargs: Any) -> tuple[plt.Figure, Any]:
    """``plt.subplots`` under the project style (constrained layout)."""
    with plt.rc_context(STYLE):
        kwargs.setdefault("layout", "constrained")
        return plt.subplots(*args, **kwargs)


def save_figure(
    fig: plt.Figure,
    path: str | Path,
    *,
    config: Any,
    seed: int | None,
    extra: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``fig`` as ``path`` (``.pdf``) and the same stem as ``.png``, each with a provenance sidecar.

    Returns the written figure paths.  Writes are atomic; the figure is closed afterwards.
    """
    path = Path(path)
    written = []
    for target in (path.with_suffix(".pdf"), path.with_suffix(".png")):
        with atomic_path(target) as tmp, plt.rc_context(STYLE):
            fig.savefig(tmp, format=target.suffix[1:], bbox_inches="tight")
        write_sidecar(target, config=config, seed=seed, extra=extra)
        written.append(target)
    plt.close(fig)
    return written
