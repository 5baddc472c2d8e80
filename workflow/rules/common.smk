# Shared helpers: config validation, the Python that runs the package CLI, and the target registry.
import json
import os
import sys

from diffusion_regimes.config import validate as validate_config
from diffusion_regimes.lock import JOB_ENV
from diffusion_regimes.preflight import preflight

# Fail before any job runs when a key or value is invalid; fills the schema defaults into `config`.
validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
# Checks across keys (names of subsets used elsewhere, UNet groups, time ranges), also before any job.
preflight(config)

# Jobs inherit this: their workers stop when the job wrapper or Snakemake dies (diffusion_regimes.lock).
os.environ[JOB_ENV] = "1"

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
    return json.dumps(section, sort_keys=True)


def provenance(path):
    """The provenance sidecar written next to every table, figure and checkpoint."""
    return f"{path}.provenance.json"


def with_provenance(*paths):
    """Outputs plus their provenance sidecars."""
    return [p for path in paths for p in (path, provenance(path))]
