"""Execution profiles and the resources rules declare (issue 6, SLURM).

Rules ask only for generic resources; the partition, account and constraints of a site live in
profiles/slurm/ as placeholders.  A rule that trains or samples a network (its CLI command is marked
``uses_network=True``, see ``cli.network_commands``) must request ``gpu`` so that the plugin's partition
selection sends it to a GPU partition.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from diffusion_regimes.cli import build_parser, gpu_capable_commands, network_commands

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
PLACEHOLDER = re.compile(r"^<[a-z0-9-]+>$")
# Resources that name something of one site; they belong in the profile, never in a rule.
SITE_RESOURCES = {
    "slurm_partition", "slurm_account", "slurm_extra", "slurm_cluster", "cluster", "clusters",
    "constraint", "qos", "gpu_model", "gres",
}
CLI_COMMAND = re.compile(r"\$DIFFUSION_REGIMES\s+([A-Za-z0-9_-]+)")


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


@pytest.fixture(scope="module")
def partitions() -> dict:
    return yaml.safe_load((PROFILE / "partitions.yaml").read_text())


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> list:
    """The workflow's rules as Snakemake parses them (tiny config; nothing runs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            snakefile=REPO / "Snakefile",
            workdir=tmp_path_factory.mktemp("workdir"),
            config_settings=ConfigSettings(configfiles=[REPO / "config" / "tiny.yaml"]),
            resource_settings=ResourceSettings(),
            storage_settings=StorageSettings(),
        )
        return list(workflow._workflow.rules)


def rule_command(rule) -> str | None:
    """The package CLI sub-command a rule's shell calls, if any."""
    match = CLI_COMMAND.search(rule.shellcmd or "")
    return match.group(1) if match else None


def gpu_problems(rules, network: frozenset[str], capable: frozenset[str] = frozenset()) -> list[str]:
    """Rules whose gpu request disagrees with the network use of the command they call.

    ``capable``: commands without a network that may run on a GPU (``cli.gpu_capable_commands``).
    """
    problems = []
    for rule in rules:
        command = rule_command(rule)
        wants_gpu = "gpu" in rule.resources
        if command in network and not wants_gpu:
            problems.append(f"rule {rule.name} runs network command {command!r} but requests no gpu")
        if wants_gpu and command not in network | capable:
            problems.append(f"rule {rule.name} requests a gpu but its command {command!r} uses no network")
        if wants_gpu and not {"mem_mb", "runtime"} <= set(rule.resources):
            problems.append(f"rule {rule.name} requests a gpu without mem_mb and runtime")
    return problems


# --- the profile --------------------------------------------------------------------------------------


def test_profile_uses_only_existing_options(profile):
    # Every key must be an option of this Snakemake and of the installed SLURM plugin (a misspelt or
    # removed option would otherwise only fail on the cluster).
    from snakemake.cli import get_argument_parser

    options = {o for action in get_argument_parser()._actions for o in action.option_strings}
    unknown = [key for key in profile if f"--{key}" not in options]
    assert not unknown, f"profiles/slurm/config.yaml: unknown options {unknown}"
    assert profile["executor"] == "slurm"
    resources = profile["default-resources"]
    assert resources["mem_mb"] > 0 and resources["runtime"] > 0


def test_profile_names_placeholders_only(profile, partitions):
    # Site names are placeholders a user replaces; a real name would be wrong on every other cluster.
    named = {k: v for k, v in profile["default-resources"].items() if k in SITE_RESOURCES}
    for per_rule in (profile.get("set-resources") or {}).values():
        named.update({k: v for k, v in per_rule.items() if k in SITE_RESOURCES})
    assert "slurm_account" in named, "the profile should show where the account goes"
    assert "slurm_partition" not in named, "partitions are chosen from partitions.yaml"
    for key, value in named.items():
        assert PLACEHOLDER.match(str(value)), f"{key}: {value!r} is not a <placeholder>"
    names = list(partitions["partitions"])
    assert names and all(PLACEHOLDER.match(n) for n in names), names


def test_partition_selection_sends_gpu_jobs_to_gpu_partition(profile):
    # The plugin reads partitions.yaml (unknown limit keys raise) and picks, per job, the best fit.
    from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

    assert (PROFILE / profile["slurm-partition-config"]).is_file()
    parts = read_partition_file(PROFILE / profile["slurm-partition-config"])
    log = SimpleNamespace(info=lambda *a: None, debug=lambda *a: None, warning=lambda *a: None)
    gpu_job = SimpleNamespace(
        name="train", threads=4, resources={"gpu": 1, "cpus_per_gpu": 8, "mem_mb": 32000, "runtime": 600}
    )
    cpu_job = SimpleNamespace(name="spectra", threads=4, resources={"mem_mb": 8000, "runtime": 60})
    assert get_best_partition(parts, gpu_job, log) == "<gpu-partition>"
    assert get_best_partition(parts, cpu_job, log) == "<cpu-partition>"


def test_status_and_log_settings_exist_in_plugin(profile):
    # `slurm-*` keys are the plugin's ExecutorSettings fields, dashed.
    from snakemake_executor_plugin_slurm import ExecutorSettings

    fields = {f.name.replace("_", "-") for f in dataclasses.fields(ExecutorSettings)}
    slurm_keys = {k.removeprefix("slurm-") for k in profile if k.startswith("slurm-")}
    assert slurm_keys and slurm_keys <= fields, slurm_keys - fields


# --- the rules ----------------------------------------------------------------------------------------


def test_network_commands_are_marked_in_the_parser():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sub.add_parser("train").set_defaults(func=print, uses_network=True)
    sub.add_parser("spectra").set_defaults(func=print)
    assert network_commands(parser) == {"train"}


def test_gpu_check_catches_a_network_rule_without_gpu():
    def rule(name, command, **resources):
        shell = f"$DIFFUSION_REGIMES {command} --spec x 2> {{log}}"
        return SimpleNamespace(name=name, shellcmd=shell, resources=resources)

    network = frozenset({"train"})
    good = [rule("train", "train", gpu=1, mem_mb=1, runtime=1), rule("spectra", "spectra", mem_mb=1)]
    assert gpu_problems(good, network) == []
    assert len(gpu_problems([rule("train", "train", mem_mb=1, runtime=1)], network)) == 1
    assert len(gpu_problems([rule("spectra", "spectra", gpu=1, mem_mb=1, runtime=1)], network)) == 1


def test_rules_call_registered_commands(rules):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    calls = {r.name: rule_command(r) for r in rules if rule_command(r)}
    unknown = {name: command for name, command in calls.items() if command not in sub.choices}
    assert not unknown, f"rules call commands the CLI does not register: {unknown}"


def test_network_rules_request_gpu_and_only_they(rules):
    assert gpu_problems(rules, network_commands()) == []


def test_paper_gpu_requests_match_the_commands(paper_rules):
    # at paper scale the Gaussian-mixture collapse rules ask for a GPU too; they must call commands
    # that run on --device
    capable = gpu_capable_commands()
    assert {"gm-collapse", "gm-collapse-law", "regimes-entropy"} <= capable
    assert gpu_problems(paper_rules, network_commands(), capable) == []


def test_no_rule_names_a_site_resource(rules):
    in_rules = {r.name: sorted(SITE_RESOURCES & set(r.resources)) for r in rules}
    in_rules = {name: keys for name, keys in in_rules.items() if keys}
    assert not in_rules, f"partition/account/constraint belong in profiles/slurm, not in rules: {in_rules}"
    sources = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    pattern = re.compile(r"slurm|--partition|sbatch")
    mentions = [str(p.relative_to(REPO)) for p in sources if pattern.search(p.read_text())]
    assert not mentions, f"SLURM specifics in workflow files: {mentions}"


# --- resources from config (issue 11) -----------------------------------------------------------------


def _parsed_rules(configfiles: list[Path], workdir: Path) -> list:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            snakefile=REPO / "Snakefile", workdir=workdir,
            config_settings=ConfigSettings(configfiles=configfiles),
            resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
        )
        # `all` and the stage target `memorisation` only gather files: no job, no resources
        return [r for r in workflow._workflow.rules if r.name not in ("all", "memorisation")]


def _value(resource):
    """A parsed rule resource's value, or its callable where the rule computes it per job."""
    if getattr(resource, "is_evaluable", lambda: False)():
        return resource._evaluator
    return getattr(resource, "value", resource)


@pytest.fixture(scope="module")
def paper_rules(tmp_path_factory) -> list:
    return _parsed_rules([REPO / "config" / "paper.yaml"], tmp_path_factory.mktemp("paper"))


def test_every_rule_reads_its_resources_from_config(paper_rules):
    # config/paper.yaml names every rule with values no hard-coded default has; each parsed rule must
    # carry exactly those, so a rule that ignores `resources:` is caught.
    sized = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["resources"]
    # regimes_clone_unet: the threads of regimes_clone's UNet jobs (a per-model override, not a rule)
    assert {r.name for r in paper_rules} == set(sized) - {"regimes_clone_unet"}, \
        "config/paper.yaml must size every rule"
    for rule in paper_rules:
        want = sized[rule.name]
        threads = _value(rule.resources["_cores"])
        if callable(threads):  # per-model threads of regimes_clone
            assert threads(SimpleNamespace(model="unet")) == sized["regimes_clone_unet"]["threads"]
            threads = threads(SimpleNamespace(model="exact"))
        got = {"threads": threads, "mem_mb": _value(rule.resources["mem_mb"]),
               "runtime": _value(rule.resources["runtime"])}
        if "gpu" in rule.resources:
            got["gpu"] = _value(rule.resources["gpu"])
        assert got == {k: want[k] for k in got} and set(want) <= set(got) | {"gpu"}, rule.name


def test_paper_jobs_fit_the_example_partitions(paper_rules, profile):
    # `snakemake --profile profiles/slurm --configfile config/paper.yaml`: the plugin must find a
    # partition for every job, else it submits without one and the site default (often 1 h) applies.
    from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

    parts = read_partition_file(PROFILE / profile["slurm-partition-config"])
    log = SimpleNamespace(info=lambda *a: None, debug=lambda *a: None, warning=lambda *a: None)
    missing = []
    jobs = []
    for rule in paper_rules:
        threads = _value(rule.resources["_cores"])
        # regimes_clone's threads depend on the model: one job of each
        per_model = ([threads(SimpleNamespace(model=m)) for m in ("exact", "unet")] if callable(threads)
                     else [threads])
        jobs += [(rule, t) for t in per_model]
    for rule, threads in jobs:
        resources = {k: _value(v) for k, v in rule.resources.items() if k in ("mem_mb", "runtime", "gpu")}
        job = SimpleNamespace(name=rule.name, threads=threads, resources=resources)
        chosen = get_best_partition(parts, job, log)
        if chosen is None:
            missing.append(f"{rule.name} {resources} threads={job.threads}")
        elif "gpu" in resources:
            assert chosen == "<gpu-partition>", rule.name
    assert not missing, f"no partition fits: {missing}"


def test_gpu_workstation_profile_offers_one_gpu():
    profile = yaml.safe_load((REPO / "profiles" / "gpu-workstation" / "config.yaml").read_text())
    assert profile["resources"] == ["gpu=1"] or profile["resources"] == {"gpu": 1}
    from snakemake.cli import get_argument_parser

    options = {o for action in get_argument_parser()._actions for o in action.option_strings}
    assert all(f"--{key}" in options for key in profile), profile


def test_slurm_comparison_skips_every_wall_clock_column():
    """The SLURM end-to-end check compares tables value by value; a column that records how long
    something took differs between any two runs and must be skipped (a `seconds` column of
    regimes_law.csv, then memorisation.csv's `train_seconds`, once failed CI this way). Every module of
    the package is searched, so a new stage's table is covered without editing this test."""
    import importlib
    import importlib.util
    import pkgutil

    import diffusion_regimes

    spec = importlib.util.spec_from_file_location("slurm_check", REPO / ".ci" / "slurm_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    columns = set()
    for info in pkgutil.walk_packages(diffusion_regimes.__path__, "diffusion_regimes."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.endswith("_COLUMNS") and isinstance(value, (tuple, list, frozenset, set)):
                columns |= {c for c in value if isinstance(c, str)}
    assert "train_seconds" in columns, "the memorisation table's columns were not found"
    timed = {c for c in columns if re.search(r"second|_s$|per_s|elapsed|wall", c)}
    assert timed, "no wall-clock column found: the pattern no longer matches the tables"
    missed = {c for c in timed if not check.is_wall_clock(c)}
    assert not missed, missed
