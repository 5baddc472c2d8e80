"""The real workflow end to end on config/tiny.yaml (snakemake CLI in a temporary working directory)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def _snakemake(*args, cwd):
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    return subprocess.run(
        [*cmd, "-s", str(REPO / "Snakefile"), "--directory", str(cwd), *args],
        cwd=cwd, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("workflow")
    run = _snakemake("--configfile", str(REPO / "config" / "tiny.yaml"), "--cores", "2", cwd=work)
    assert run.returncode == 0, run.stderr[-4000:]
    return work


def test_outputs_exist_with_provenance(tiny_run):
    work = tiny_run
    tables = sorted((work / "results" / "tables").glob("*.csv"))
    figures = sorted((work / "results" / "figures").glob("*.pdf"))
    assert tables and figures
    # every table and figure (present now or added by later stages) carries a provenance sidecar
    for path in [*tables, *figures, *(work / "results" / "figures").glob("*.png")]:
        sidecar = path.with_name(path.name + ".provenance.json")
        assert sidecar.is_file(), f"{path} has no provenance sidecar"
        record = json.loads(sidecar.read_text())
        assert {"config", "git_commit", "seed", "version"} <= set(record)
        assert path.stat().st_size > 0
    for table in tables:
        frame = pd.read_csv(table)
        assert len(frame) > 0, table
    # nothing `rule all` requests is missing: a dry run finds nothing to do
    dry = _snakemake("--configfile", str(REPO / "config" / "tiny.yaml"), "--cores", "1", "--dry-run",
                     cwd=work)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


def test_gaussian_mixture_outputs_are_sane(tiny_run):
    tables = tiny_run / "results" / "tables"
    spec = pd.read_csv(tables / "gm_speciation.csv")
    assert list(spec.columns) == ["d", "t", "t_over_tS", "phi_sim", "stderr", "phi_theory", "engine", "pairs"]
    assert set(spec["engine"]) == {"reduced", "full"}
    assert spec["phi_sim"].between(0, 1).all() and spec["phi_theory"].between(0.5, 1).all()
    times = pd.read_csv(tables / "gm_speciation_times.csv")
    assert (abs(times["t_S_measured"] - times["t_S_theory"]) < 1.0).all()
    coll = pd.read_csv(tables / "gm_collapse.csv")
    assert (coll["theory"].between(0, 1)).all()
    law = pd.read_csv(tables / "gm_collapse_law.csv")
    assert {"n", "d", "alpha", "t_C_theory", "t_C_numeric"} <= set(law.columns)
    for name in ("gm_speciation", "gm_collapse", "gm_collapse_law", "gm_potential"):
        assert (tiny_run / "results" / "figures" / f"{name}.png").stat().st_size > 1000


def test_regimes_has_exact_and_unet_rows(tiny_run):
    """tiny.yaml: the exact score at n = 20 and all (= 200), the UNet only at 200 (its training set)."""
    table = pd.read_csv(tiny_run / "results" / "tables" / "regimes.csv")
    rows = sorted(zip(table["model"], table["n"], strict=True))
    assert rows == [("exact", 20), ("exact", 200), ("unet", 200)]
    unet = table[table["model"] == "unet"].iloc[0]
    assert unet["checkpoint_step"] == 4 and 0.0 <= unet["memorised_fraction"] <= 1.0
    assert (tiny_run / "results" / "figures" / "regimes_neighbours_mnist.png").stat().st_size > 1000


def test_report(tiny_run):
    report = tiny_run / "report.html"
    run = _snakemake("--configfile", str(REPO / "config" / "tiny.yaml"), "--report", str(report),
                     cwd=tiny_run)
    assert run.returncode == 0, run.stderr[-3000:]
    assert report.is_file() and report.stat().st_size > 10_000


def test_invalid_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("gaussian_mixture:\n  speciation:\n    engine: quantum\n")
    run = _snakemake("--configfile", str(REPO / "config" / "tiny.yaml"), str(bad), "--cores", "1",
                     cwd=tmp_path)
    assert run.returncode != 0
    message = run.stdout + run.stderr
    assert "quantum" in message and "reduced" in message and "full" in message
    assert not (tmp_path / "results").exists()
