"""Which configuration keys each workflow job reads: the parameter contract between workflow and CLI.

Snakemake re-runs a job when one of its ``params`` changes.  Passing a whole config section to every job of
a stage would make an unrelated key (a sampler setting of the UNet, the law grid of the Gaussian mixture, a
quality threshold that only the table reads) re-run hours of finished sweeps.  So each job receives its
*view*: the keys of :data:`JOB_KEYS` that it reads, and nothing else.  Threads, memory and runtime live in
``resources:`` and never enter a view; which datasets a stage covers routes jobs and enters none either.

A view is a plain mapping with the layout of the section it comes from (nested keys stay nested), so the
command builds the same typed section from it (keys absent from a view take their defaults and are, by this
contract, never read by that job).  Keys of one model (``sampler_steps.unet``) are resolved by the
workflow and passed as their own arguments, so a UNet setting cannot re-run an exact-score sweep.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from diffusion_regimes.errors import ConfigError

# job -> (config section, dotted keys of that section the job reads); "*" = the whole section, and "-key"
# after it leaves ``key`` out
JOB_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "spectrum": ("spectra", ("*", "-fashion_pairs", "-fashion_path")),
    "spectra_table": ("spectra", ()),
    "classifier": ("classifier", ("*",)),
    "train_ddpm": ("train", ("*", "-datasets")),
    "unet": ("unet", ("*",)),
    "regimes_entropy": ("regimes", ("entropy_grid", "entropy_t_min", "entropy_t_max", "entropy_times",
                                    "entropy_step_every", "n_prime", "max_chunk_bytes")),
    "regimes_clone": ("regimes", ("branch_grid", "branch_uniform", "branch_dense", "branch_dense_width",
                                  "branch_t_min", "branch_t_max_factor", "branch_every", "branch_max_step",
                                  "chunk_pairs", "max_chunk_bytes", "nearest_check_every", "strip_times",
                                  "n_boot")),
    "regimes_row": ("regimes", ("quality_phi_min", "quality_confidence_gap")),
    "regimes_uturn": ("regimes", ("branch_t_min", "branch_t_max_factor", "uturn_times", "max_chunk_bytes")),
    "regimes_law": ("regimes", ("law_pairs", "law_steps", "law_entropy_t_min", "law_branches",
                                "law_t_min_factor", "law_t_max_factor", "branch_t_max_factor",
                                "entropy_t_max", "entropy_times", "n_prime", "max_chunk_bytes", "chunk_pairs",
                                "n_boot", "strip_times", "nearest_check_every")),
    "regimes_table": ("regimes", ()),
    "regimes_figures": ("regimes", ()),
    "gm_speciation": ("gaussian_mixture", ("mu_tilde", "sigma", "speciation.branch_times", "speciation.t_max",
                                           "speciation.n_steps", "speciation.dtype", "speciation.level",
                                           "speciation.n_boot")),
    "gm_merge": ("gaussian_mixture", ()),
    "memorisation_series": ("memorisation", ("*", "-datasets", "-n_values", "-seeds", "-extra_seeds",
                                             "-extra_seed_sizes", "-widths", "-width_n", "-onset_level")),
    "memorisation_table": ("memorisation", ("n_boot", "onset_level", "quality_confidence_gap")),
    "memorisation_figures": ("memorisation", ()),
    "gm_collapse": ("gaussian_mixture", ("mu_tilde", "sigma", "max_chunk_bytes", "collapse.n",
                                         "collapse.n_prime", "collapse.t_max", "collapse.t_min",
                                         "collapse.n_times", "collapse.level", "collapse.grid")),
    "gm_collapse_law": ("gaussian_mixture", ("mu_tilde", "sigma", "max_chunk_bytes", "collapse.level",
                                             "law")),
    "gm_figures": ("gaussian_mixture", ("mu_tilde", "sigma", "speciation.engine", "speciation.level",
                                        "potential_offsets")),
    "speciation_gm": ("speciation", ("gm",)),
    "speciation_predict": ("speciation", ("predictor",)),
    "speciation_measure": ("speciation", ("measure",)),
    "speciation_groups": ("speciation", ("measure", "predictor", "four_class")),
    "speciation_table": ("speciation", ("measure.n_boot",)),
    "speciation_figures": ("speciation", ()),
    "ideal_models_compare": ("ideal_models", ("*", "-datasets", "-train_steps", "-regimes_models")),
    "ideal_models_figure": ("ideal_models", ("reference",)),
}


def job_view(config: Mapping[str, Any], job: str) -> dict[str, Any]:
    """The part of the validated ``config`` that ``job`` reads (see :data:`JOB_KEYS`).

    Keys missing from ``config`` are left out (the command then uses the section's default, which the
    schema has normally filled in already).
    """
    if job not in JOB_KEYS:
        raise ConfigError(f"no parameter view for job {job!r}; known jobs: {sorted(JOB_KEYS)}")
    section_name, keys = JOB_KEYS[job]
    section = config.get(section_name) or {}
    if keys and keys[0] == "*":
        left_out = {key[1:] for key in keys[1:]}
        return {key: json.loads(json.dumps(value)) for key, value in section.items() if key not in left_out}
    view: dict[str, Any] = {}
    for dotted in keys:
        *parents, leaf = dotted.split(".")
        source: Any = section
        for parent in parents:
            source = source.get(parent) if isinstance(source, Mapping) else None
        if not isinstance(source, Mapping) or leaf not in source:
            continue
        target = view
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = json.loads(json.dumps(source[leaf]))
    return view


def job_spec(config: Mapping[str, Any], job: str) -> str:
    """:func:`job_view` as the canonical JSON passed to the command's ``--spec``."""
    return json.dumps(job_view(config, job), sort_keys=True)
