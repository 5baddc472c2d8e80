# Dynamical regimes of diffusion models: the reproduction workflow.
# `snakemake --cores all` runs the default (offline, CPU) config; see README.md for paper scale.
from pathlib import Path

from snakemake.utils import min_version

from diffusion_regimes.config import load_yaml

min_version("9.0")

DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"
# Read once by our loader first: an empty or malformed file is reported with its name and line
# (Snakemake's own message names neither).
load_yaml(DEFAULT_CONFIG, allow_empty=False)


configfile: DEFAULT_CONFIG


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/spectra.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/regimes.smk"
include: "workflow/rules/gaussian_mixture.smk"
include: "workflow/rules/speciation.smk"
include: "workflow/rules/memorisation.smk"
include: "workflow/rules/ideal_models.smk"


rule all:
    input:
        all_targets(),
    default_target: True


# Targets asked for by path: n must be even (two balanced classes) and the model one that is registered;
# anything else is "no rule to produce" at once instead of a row on unbalanced classes or a KeyError.
wildcard_constraints:
    n=r"[0-9]*[02468]",
    model="|".join(REGIMES_MODELS),
    sampler="|".join(REGIMES_SAMPLERS),
    law_n=r"[0-9]+",
    side=r"[0-9]+",
    network=r"[a-z]+",
    machine=r"ls|els",
