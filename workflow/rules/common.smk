# Shared helpers: config validation, the Python that runs the package CLI, and the target registry.
import json
import os
import sys

from diffusion_regimes.config import build as build_section
from diffusion_regimes.config import check_overlays, load_yaml
from diffusion_regimes.config import migrate_legacy_resources, migrate_legacy_sections
from diffusion_regimes.config import validate as validate_config
from diffusion_regimes.data import DatasetSpec
from diffusion_regimes.data.freshness import raw_paths
from diffusion_regimes.data.sources import FASHION_DEBIAN
from diffusion_regimes.errors import ConfigError
from diffusion_regimes.jobs import job_spec
from diffusion_regimes.lock import JOB_ENV
from diffusion_regimes.preflight import preflight
from diffusion_regimes.regimes import MODELS as REGIMES_MODELS
from diffusion_regimes.regimes import SAMPLERS as REGIMES_SAMPLERS
from diffusion_regimes.regimes import RegimesSpec

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"

# An overlay's `key: {}` merges into config.yaml's mapping and changes nothing: an error, not a silent no-op.
check_overlays(load_yaml(DEFAULT_CONFIG), [(str(p), load_yaml(p)) for p in workflow.overwrite_configfiles
                                           if Path(p).is_file()])

# train.threads/mem_mb/runtime_min and ideal.threads moved to `resources:`, and the section `ideal:` is now
# `regimes:`; old overlays keep working (with a notice).
for notice in [*migrate_legacy_resources(config), *migrate_legacy_sections(config)]:
    print(notice, file=sys.stderr)
# Fail before any job runs when a key or value is invalid; fills the schema defaults into `config` (those of
# every `$ref`ed section file too, so each job's view names every value it runs with).
validate_config(config, SCHEMAS / "config.schema.yaml")
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
    config["regimes"]["datasets"] = [name for name in config["regimes"]["datasets"] if name in keep]
    config["regimes"]["law_datasets"] = [name for name in config["regimes"]["law_datasets"] if name in keep]
    if config["train"].get("datasets") is not None:
        config["train"]["datasets"] = [name for name in config["train"]["datasets"] if name in keep]
    for section in ("speciation", "memorisation"):
        if config.get(section, {}).get("datasets"):
            config[section]["datasets"] = [name for name in config[section]["datasets"] if name in keep]

# The interpreter running Snakemake also runs the package CLI (the same environment everywhere).  Shells
# call it as $DIFFUSION_REGIMES: which interpreter runs a job is environment, not a job parameter, so it is
# not in `params` (a moved virtual environment must not re-run finished jobs).  Jobs inherit the variable,
# also on a cluster, where each job's Snakemake sets it again.
os.environ["DIFFUSION_REGIMES"] = f"{sys.executable} -m diffusion_regimes"


envvars:
    "DIFFUSION_REGIMES",


# Every stage appends the final files it contributes; `rule all` asks for all of them.
TARGETS: list[str] = []


def all_targets():
    return TARGETS


def params_of(job):
    """JSON of the config keys `job` reads (diffusion_regimes.jobs.JOB_KEYS): its --spec, and the only
    config it passes, so a key it does not read never re-runs it."""
    return job_spec(config, job)


def dataset_spec(wildcards):
    """JSON of `datasets.<name>`: the one subset a prepare job reads."""
    return json.dumps(config["datasets"][wildcards.dataset], sort_keys=True)


def raw_inputs(wildcards):
    """The raw data of a subset, as inputs of its prepare job (a dry run names missing data; a newer file re-prepares)."""
    entry = config["datasets"][wildcards.dataset]
    spec = build_section(DatasetSpec, entry, where=f"datasets.{wildcards.dataset}")
    paths = raw_paths(spec)
    if spec.format in ("cifar10", "fashion_idx") and spec.download and not paths[0].exists():
        paths = paths[1:]  # the job downloads it
    return [str(p) for p in paths]


def fashion_folder():
    """Folder of the Fashion-MNIST IDX files: `spectra.fashion_path`, else the Debian package's folder."""
    return config["spectra"]["fashion_path"] or str(FASHION_DEBIAN)


# --- the regimes stage: which (model, n) sweeps run on which dataset -----------------------------------
REGIMES = build_section(RegimesSpec, config["regimes"], where="regimes")


def subset_n(dataset):
    """Images in the prepared subset of `dataset` (config `datasets.<name>.n`)."""
    if dataset not in config.get("datasets", {}):
        raise ConfigError(f"regimes.datasets: {dataset!r} is not a key of `datasets:` {list(config['datasets'])}")
    return int(config["datasets"][dataset]["n"])


def ddpm_datasets():
    """Subsets the UNet is trained on (`train.datasets`, default: all of `datasets:`)."""
    chosen = config["train"].get("datasets")
    return list(chosen) if chosen is not None else list(config.get("datasets", {}))


def regimes_n_values(model, dataset):
    """Training-set sizes `model` is measured at on `dataset`; none where `regimes.models` leaves it out.

    The UNet is trained on the whole prepared subset (train-ddpm), so its sweeps exist only at
    n = datasets.<name>.n, where phi_C, t̂_C and the memorisation ratio refer to its own training set.
    """
    if model not in REGIMES.models_for(dataset):
        return ()
    if model == "unet":
        return (subset_n(dataset),) if dataset in ddpm_datasets() else ()
    return REGIMES.n_values_for(dataset, subset_n=subset_n(dataset))


def regimes_sweeps(dataset):
    """[(model, n)] of every sweep with the DDPM sampler on `dataset`, in a fixed order (the figures' sweeps)."""
    return [(model, n) for model in REGIMES_MODELS for n in regimes_n_values(model, dataset)]


def regimes_runs(dataset):
    """[(model, n, sampler)] of every sweep on `dataset`: the DDPM sweeps, and at the whole subset each
    further sampler of `regimes.samplers` (the sampler comparison) for every model measured there."""
    runs = [(model, n, "ddpm") for model, n in regimes_sweeps(dataset)]
    whole = subset_n(dataset)
    for sampler in REGIMES.samplers_for(dataset)[1:]:
        runs += [(model, n, sampler) for model, n in regimes_sweeps(dataset) if n == whole]
    return runs


def regimes_sweep_folder(dataset, model, n, sampler="ddpm"):
    return f"results/regimes/{dataset}/n{n}/{model}/{sampler}"


def regimes_sweep_pairs(wildcards):
    """Clone pairs of one sweep: the model's count for the DDPM sampler, n_pairs_sampler for the others."""
    return REGIMES.sweep_pairs(wildcards.model, sampler=wildcards.sampler, n=int(wildcards.n),
                               subset_n=subset_n(wildcards.dataset), dataset=wildcards.dataset)


def regimes_uturns(wildcards=None):
    """U-turn tables: one per DDPM sweep (model, n) of every dataset, when `regimes.uturn` is on."""
    if not REGIMES.uturn:
        return []
    return [
        f"results/regimes/{dataset}/n{n}/{model}/uturn.csv"
        for dataset in config["regimes"]["datasets"]
        for model, n in regimes_sweeps(dataset)
    ]


def regimes_law_cells(wildcards=None):
    """Rows of the collapse-law grid: every (resolution, n) of every dataset in `regimes.law_datasets`."""
    return [
        f"results/regimes/{dataset}/law/r{side}_n{n}.csv"
        for dataset in REGIMES.law_datasets
        for side in REGIMES.law_resolutions_for(dataset)
        for n in REGIMES.law_n_for(subset_n=subset_n(dataset), dataset=dataset)
    ]


def regimes_model_inputs(wildcards):
    """Extra inputs of a sweep: the trained checkpoint for the UNet, nothing for the exact score."""
    if wildcards.model == "unet":
        return {"checkpoint": f"results/models/{wildcards.dataset}/unet/final.pt"}
    return {}


def regimes_sweep_files(kind):
    """Input function: file `kind` (branches.csv, samples.pt, ...) of every sweep of the dataset."""
    return lambda wc: [f"{regimes_sweep_folder(wc.dataset, model, n)}/{kind}" for model, n in regimes_sweeps(wc.dataset)]


def regimes_sweep_keys(wildcards):
    """`model/n` of every sweep of the dataset, aligned with regimes_sweep_files."""
    return [f"{model}/{n}" for model, n in regimes_sweeps(wildcards.dataset)]


def regimes_top_entropy(wildcards):
    """f^e table at the largest n measured on the dataset (the collapse figure's panel)."""
    n_top = max(n for _, n in regimes_sweeps(wildcards.dataset))
    return f"results/regimes/{wildcards.dataset}/n{n_top}/entropy.csv"


def regimes_rows(wildcards=None):
    return [
        f"{regimes_sweep_folder(dataset, model, n, sampler)}/row.csv"
        for dataset in config["regimes"]["datasets"]
        for model, n, sampler in regimes_runs(dataset)
    ]


# --- the Gaussian-mixture stage ------------------------------------------------------------------------
GM_SPEC = config["gaussian_mixture"]["speciation"]
# (engine, d) of every speciation job: the figure's engine for each d, plus the full-engine check
GM_SPECIATION_JOBS = [(GM_SPEC["engine"], d) for d in GM_SPEC["dims"]]
if GM_SPEC["check_pairs"] > 0 and GM_SPEC["engine"] != "full":
    GM_SPECIATION_JOBS.append(("full", GM_SPEC["check_dim"]))


def gm_speciation_pairs(wildcards):
    full_check = wildcards.engine == "full" and GM_SPEC["engine"] != "full"
    return GM_SPEC["check_pairs"] if full_check else GM_SPEC["pairs"]


# Report categories, numbered in the order the landing text (workflow/report/workflow.rst) reads them.
REPORT_GM = "1. Gaussian mixture"
REPORT_SPECTRA = "2. Spectra (Table 1)"
REPORT_REGIMES = "3. Real data: regimes"
REPORT_LEARNED = "4. Learned denoisers"
REPORT_SPECIATION = "5. Speciation beyond one spike"
REPORT_PDF = "6. Vector figures (PDF)"


def report_labels(kind, content):
    """Report labels of a per-dataset item: what it is and which dataset (a function of the wildcards)."""
    return lambda wildcards: {"kind": kind, "content": f"{content}, {wildcards.dataset}"}


def provenance(path):
    """The provenance sidecar written next to every table, figure and checkpoint."""
    return f"{path}.provenance.json"


def with_provenance(*paths):
    """Outputs plus their provenance sidecars."""
    return [p for path in paths for p in (path, provenance(path))]


def with_provenance_only(stem):
    """The provenance sidecars of the .pdf and .png of a figure `stem` (the figures are outputs of their own)."""
    return [provenance(f"{stem}.{ext}") for ext in ("pdf", "png")]


# The figures of the regimes stage, per dataset (results/figures/regimes_<stem>_<dataset>.pdf/.png).
REGIMES_FIGURES = ("phi", "collapse", "strip", "neighbours")

# The figures of the Gaussian-mixture stage -> their label in the report.
GM_FIGURE_CONTENT = {
    "gm_speciation": "Fig. 2: φ(t) against t/t_S",
    "gm_collapse": "Fig. 3: f^e(t)/α",
    "gm_collapse_law": "t_C against α = log(n)/d",
    "gm_potential": "potential V(q, t) around t_S",
}


# --- the speciation stage (workflow/rules/speciation.smk) -----------------------------------------------
from diffusion_regimes.speciation import pair_slug

SPECIATION = config["speciation"]
# Fashion-MNIST pairs measured by cloning, keyed by their file name
SPECIATION_PAIRS = {pair_slug(a, b): (a, b) for a, b in SPECIATION["fashion_pairs"]}
SPECIATION_PREDICTS = bool(SPECIATION["datasets"]) or SPECIATION["fashion"]
SPECIATION_GROUPS = bool(SPECIATION["four_class"]["groups"])


def speciation_fashion_folder():
    """Folder of the Fashion-MNIST IDX files: `speciation.fashion_path`, else the Debian package's folder."""
    return SPECIATION["fashion_path"] or str(FASHION_DEBIAN)


def speciation_measured(wildcards=None):
    """One-row tables of every measured pair: prepared subsets, then Fashion-MNIST pairs."""
    return [f"results/speciation/measured/{name}.csv" for name in SPECIATION["datasets"]] + [
        f"results/speciation/fashion/{slug}.csv" for slug in SPECIATION_PAIRS
    ]

# --- the memorisation stage: one series per (dataset, width, n, seed) ---------------------------------------
from diffusion_regimes.memorisation import MemorisationSpec

MEMORISATION = build_section(MemorisationSpec, config["memorisation"], where="memorisation")


def memorisation_series(dataset):
    return [
        f"results/memorisation/{dataset}/w{width}/n{n}/s{seed}/series.csv"
        for width, n, seed in MEMORISATION.series()
    ]


def memorisation_all_series(wildcards=None):
    return [path for dataset in MEMORISATION.datasets for path in memorisation_series(dataset)]


# --- the ideal-models stage (workflow/rules/ideal_models.smk) ---------------------------------------------
IDEAL = config["ideal_models"]
IDEAL_FILES = ("summary.csv", "per_sample.csv", "trajectory.csv", "calibration.csv", "bank_study.csv")


def ideal_datasets():
    """Subsets of `ideal_models.datasets` that this run covers (run_datasets may drop some)."""
    return [name for name in IDEAL["datasets"] if name in config.get("datasets", {})]


def ideal_train_spec(wildcards):
    """The train stage's view with the stage's own length (`ideal_models.train_steps`)."""
    view = json.loads(params_of("train_ddpm"))
    if IDEAL["train_steps"] is not None:
        view["steps"] = IDEAL["train_steps"]
    return json.dumps(view, sort_keys=True)


def ideal_sweeps(wildcards=None):
    """The machines' cloning sweeps (when `ideal_models.regimes_pairs` > 0)."""
    if IDEAL["regimes_pairs"] < 1:
        return []
    return expand("results/ideal_models/{dataset}/regimes_{machine}/summary.json", dataset=ideal_datasets(),
                  machine=IDEAL["regimes_models"])
