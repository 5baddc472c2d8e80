"""The real workflow end to end on config/tiny.yaml (snakemake CLI in a temporary working directory)."""

import json
import re
import shutil
import stat
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


# What a user's checkout holds besides the package (installed, editable, from REPO).
CHECKOUT_FILES = ("Snakefile", "workflow", "config", "profiles", "former")


def _copy_checkout(destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    for name in CHECKOUT_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, destination / name)
        else:
            shutil.copy2(REPO / name, destination / name)
    return destination


def _snakemake_here(*args, cwd):
    """snakemake run inside a checkout copy, as a user runs it (Snakefile and config relative)."""
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny config run to the end inside a copy of the checkout (results/ beside the Snakefile)."""
    work = _copy_checkout(tmp_path_factory.mktemp("workflow") / "checkout")
    run = _snakemake_here("--configfile", "config/tiny.yaml", "--cores", "2", cwd=work)
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
    dry = _snakemake_here("--configfile", "config/tiny.yaml", "--cores", "1", "--dry-run", cwd=work)
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
    report = tiny_run / "results" / "report.html"
    run = _snakemake_here("--configfile", "config/tiny.yaml", "--report", "results/report.html", cwd=tiny_run)
    assert run.returncode == 0, run.stderr[-3000:]
    html = report.read_text()
    # the landing text, rendered (a reST error would show as a "System Message" block)
    assert "Dynamical regimes of diffusion models: reproduction report" in html
    assert "System Message" not in html and "Substitution definition" not in html
    figures = tiny_run / "results" / "figures"
    for png in sorted(figures.glob("*.png")):
        # each figure as an inline PNG item with its PDF beside it in the report
        assert png.name in html and png.with_suffix(".pdf").name in html, png.name
    assert html.count("image/png") >= len(list(figures.glob("*.png")))
    tables = tiny_run / "results" / "tables"
    for csv in sorted(tables.glob("*.csv")):
        assert csv.name in html, f"{csv.name} is not in the report"
    # the summary tables are rendered in full in their captions (csv-table): their headers appear as cells
    for header in ("lambda_first_channel", "t_s_fit", "t_S_measured", "t_C_numeric", "t_C_theory"):
        assert re.search(rf"<th[^>]*>(<p>)?{header}", html.replace("\\", "")), header


def test_report_dependency_is_declared():
    # `snakemake --report` imports pygments; a plain `pip install -e .` must bring it (pytest also pulls
    # it in, so only the declared requirement shows that the README install suffices).  Read from
    # pyproject.toml: an editable install's metadata can be older than the file.
    import tomllib

    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"pygments\b", r, flags=re.IGNORECASE) for r in requires), requires


def test_moved_checkout_reruns_nothing(tiny_run, tmp_path):
    # Snakemake records input paths; none may be absolute, or a moved checkout re-runs everything
    moved = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(tiny_run, moved, symlinks=True)
    dry = _snakemake_here("--configfile", "config/tiny.yaml", "--cores", "1", "--dry-run", cwd=moved)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]


def test_outputs_are_readable_by_the_group_and_others(tiny_run):
    # the test process runs under the usual umask 022 unless the CI sets another; outputs follow it
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o666 & ~mask
    results = tiny_run / "results"
    outputs = [*(results / "tables").glob("*.csv"), *(results / "figures").glob("*")]
    for path in outputs:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_job_logs_are_plain_and_close_with_a_summary(tiny_run):
    logs = sorted((tiny_run / "results" / "logs").rglob("*.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert "\r" not in text, f"{log}: progress bar carriage returns in a log file"
        assert re.search(r"done [a-z-]+: .*wall [0-9.]+ s$", text.strip().splitlines()[-1]), log
    train = next((tiny_run / "results" / "logs" / "train_ddpm").glob("*.log")).read_text()
    assert "final_loss" in train
    classifier = next((tiny_run / "results" / "logs" / "classifier").glob("*.log")).read_text()
    assert "held_out_accuracy" in classifier


def test_invalid_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("gaussian_mixture:\n  speciation:\n    engine: quantum\n")
    run = _snakemake("--configfile", str(REPO / "config" / "tiny.yaml"), str(bad), "--cores", "1",
                     cwd=tmp_path)
    assert run.returncode != 0
    message = run.stdout + run.stderr
    assert "quantum" in message and "reduced" in message and "full" in message
    assert not (tmp_path / "results").exists()
