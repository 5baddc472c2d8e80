# Shared helpers: config validation, the Python that runs the package CLI, and the target registry.
import json
import os
import sys

from diffusion_regimes.config import migrate_legacy_resources
from diffusion_regimes.config import validate as validate_config
from diffusion_regimes.errors import ConfigError
from diffusion_regimes.lock import JOB_ENV
from diffusion_regimes.preflight import preflight

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"

# train.threads/mem_mb/runtime_min and ideal.threads moved to `resources:`; old overlays keep working.
for notice in migrate_legacy_resources(config):
    print(notice, file=sys.stderr)
# Fail before any job runs when a key or value is invalid; fills the schema defaults into `config`.
validate_config(config, SCHEMAS / "config.schema.yaml")
# The defaults of `resources:` sit one $ref deeper than the validator fills, so fill them here.
validate_config(config["resources"], SCHEMAS / "resources.schema.yaml")
# Checks across keys (names of subsets used elsewhere, UNet groups, time ranges), also before any job.
preflight(config)

# Jobs inherit this: their workers stop when the job wrapper or Snakemake dies (diffusion_regimes.lock).
os.environ[JOB_ENV] = "1"


def repo_path(relative):
    """A file of this repository as a path relative to the working directory.

    Relative, not absolute: Snakemake records input paths, so an absolute one would make a moved or
    copied checkout look like a changed input set and re-run everything downstream.
    """
    return os.path.relpath(Path(workflow.basedir) / relative)


def rule_threads(rule):
    """CPU threads of `rule` (config `resources.<rule>.threads`)."""
    return config["resources"][rule]["threads"]


def rule_resources(rule):
    """Scheduler resources of `rule` (config `resources.<rule>`): mem_mb, runtime and gpu when > 0."""
    entry = config["resources"][rule]
    chosen = {"mem_mb": entry["mem_mb"], "runtime": entry["runtime"]}
    if entry.get("gpu", 0) > 0:
        chosen["gpu"] = entry["gpu"]
    return chosen


# `run_datasets:` restricts the run to some subsets without editing the lists of every section
# (an overlay's `datasets:` merges with the default's, so it cannot remove MNIST).
if config["run_datasets"] is not None:
    unknown = sorted(set(config["run_datasets"]) - set(config.get("datasets", {})))
    if unknown:
        raise ConfigError(
            f"run_datasets: {unknown} are not keys of `datasets:` {sorted(config.get('datasets', {}))}; "
            "list configured subsets only (config/README.md, run_datasets)"
        )
    keep = list(config["run_datasets"])
    config["datasets"] = {name: config["datasets"][name] for name in keep}
    config["ideal"]["datasets"] = [name for name in config["ideal"]["datasets"] if name in keep]
    if config["train"].get("datasets") is not None:
        config["train"]["datasets"] = [name for name in config["train"]["datasets"] if name in keep]

# The interpreter running Snakemake also runs the package CLI (the same environment everywhere).
CLI = f"{sys.executable} -m diffusion_regimes"

# Every stage appends the final files it contributes; `rule all` asks for all of them.
TARGETS: list[str] = []


def all_targets():
    return TARGETS


def spec(*keys):
    """JSON of the config section at `keys` (passed to the CLI as --spec; a change re-runs the rule)."""
    section = config
    for key in keys:
        section = section[key]
    if keys in (("ideal",), ("train",)):
        # Which subsets a stage covers routes jobs but changes no job's result: left out, a run narrowed
        # by `run_datasets:` and a full run share their finished jobs.
        section = {key: value for key, value in section.items() if key != "datasets"}
    return json.dumps(section, sort_keys=True)


# Report categories, numbered in the order the landing text (workflow/report/workflow.rst) reads them.
REPORT_GM = "1. Gaussian mixture"
REPORT_SPECTRA = "2. Spectra (Table 1)"
REPORT_REGIMES = "3. Real data: regimes"
REPORT_LEARNED = "4. Learned denoisers"
REPORT_PDF = "5. Vector figures (PDF)"


def report_labels(kind, content):
    """Report labels of a per-dataset item: what it is and which dataset (a function of the wildcards)."""
    return lambda wildcards: {"kind": kind, "content": f"{content}, {wildcards.dataset}"}


def provenance(path):
    """The provenance sidecar written next to every table, figure and checkpoint."""
    return f"{path}.provenance.json"


def with_provenance(*paths):
    """Outputs plus their provenance sidecars."""
    return [p for path in paths for p in (path, provenance(path))]
