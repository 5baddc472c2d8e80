# Dynamical regimes of diffusion models: the reproduction workflow.
# `snakemake --cores all` runs the default (offline, CPU) config; see README.md for paper scale.
from pathlib import Path


configfile: Path(workflow.basedir) / "config" / "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/spectra.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/collapse.smk"
include: "workflow/rules/speciation.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/gaussian_mixture.smk"
include: "workflow/rules/learned.smk"


rule all:
    input:
        all_targets(),
    default_target: True
