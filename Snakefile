# Dynamical regimes of diffusion models: the reproduction workflow.
# `snakemake --cores all` runs the default (offline, CPU) config; see README.md for paper scale.
from pathlib import Path


configfile: Path(workflow.basedir) / "config" / "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/gaussian_mixture.smk"


rule all:
    input:
        all_targets(),
    default_target: True
