"""The rehearsal of the paper run (issue 27): every rule config/paper.yaml schedules executes, on stand-in
raw data in the real formats (tests/raw_data.py) with config/paper_rehearsal.yaml cutting only the sizes.

Slow tier (CI runs it): about ten minutes on two cores.
"""

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .raw_data import write_paper_raw_data

REPO = Path(__file__).resolve().parents[1]
CHECKOUT = ("Snakefile", "workflow", "config", "profiles", "former")
PAPER = ("config/paper.yaml",)
REHEARSAL = ("config/paper.yaml", "config/paper_rehearsal.yaml")


def _snakemake(work: Path, configs, *args) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    return subprocess.run([*cmd, "--configfile", *configs, *args], cwd=work, capture_output=True, text=True,
                          timeout=1800)


def _scheduled_rules(dry_run_output: str) -> set[str]:
    """Rules of the "Job stats" table of a dry run."""
    lines = dry_run_output.splitlines()
    start = lines.index("Job stats:") + 3
    rules = set()
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        rules.add(parts[0])
    return rules - {"total"}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    work = tmp_path_factory.mktemp("rehearsal")
    for name in CHECKOUT:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, work / name)
    write_paper_raw_data(work, per_class=20, lsun_per_class=20)
    dry = _snakemake(work, PAPER, "--cores", "2", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-4000:]
    start = time.perf_counter()
    run = _snakemake(work, REHEARSAL, "--cores", "2")
    wall = time.perf_counter() - start
    assert run.returncode == 0, run.stderr[-6000:]
    executed = set(re.findall(r"^(?:local)?rule (\w+):", run.stdout + run.stderr, flags=re.M))
    print(f"rehearsal: {wall:.0f} s wall, {len(executed)} rules executed")
    return {"work": work, "paper_rules": _scheduled_rules(dry.stdout + dry.stderr), "executed": executed,
            "wall": wall}


@pytest.mark.slow
def test_every_rule_of_the_paper_dag_executes(rehearsal):
    assert rehearsal["paper_rules"] - {"all"} == rehearsal["executed"] - {"all"}
    # the paper stages' 23 rules and the speciation stage's 5 (on by default; memorisation and ideal_models
    # are overlays the paper config leaves off)
    assert len(rehearsal["executed"] - {"all"}) >= 28


@pytest.mark.slow
def test_the_rehearsal_tables_have_the_paper_runs_columns(rehearsal):
    from diffusion_regimes.regimes import REGIMES_COLUMNS

    results = rehearsal["work"] / "results"
    table = pd.read_csv(results / "tables" / "regimes.csv")
    assert tuple(table.columns) == REGIMES_COLUMNS
    # the six subsets, both models, the three samplers at the whole subset; LSUN n = 40 000's UNet only
    assert set(table["dataset"]) == {"mnist", "cifar10", "imagenet16", "imagenet32", "lsun", "lsun_n200"}
    assert set(table.loc[table["dataset"] == "lsun", "model"]) == {"unet"}
    assert set(table["sampler"]) == {"ddpm", "euler_maruyama", "heun"}
    assert (table["steps"] == 10).all()
    spectra = pd.read_csv(results / "tables" / "spectra.csv")
    assert set(spectra["dataset"]) >= {"mnist", "cifar10", "imagenet16", "imagenet32", "lsun", "lsun_n200"}
    # the pretrained path ran: the classifiers start from the stand-in torchvision weights
    import json

    for dataset in ("mnist", "lsun"):
        record = json.loads((results / "classifier" / dataset / "classifier.json").read_text())
        assert record["architecture"] == "resnet18" and record["network_options"]["imagenet_stem"] is True
