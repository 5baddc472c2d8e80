"""The protocol rows (diffusion_regimes.protocol) against what the paper DAG's jobs receive (issue 27).

``config/paper.yaml`` is merged onto ``config/config.yaml`` as Snakemake merges it, the DAG is dry-run on
stand-ins for the raw data, and every row's value is read back from the jobs' ``--spec`` views and flags.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.protocol import (
    README_BEGIN,
    README_END,
    ROWS,
    check_jobs,
    compare,
    jobs_of_dry_run,
    load_config,
    markdown_table,
)

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper.yaml"


def _dry_run(work: Path, *configs: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    args = ["--configfile", *map(str, configs)]  # one flag, every file (a second flag replaces the first)
    return subprocess.run([*cmd, "-s", str(REPO / "Snakefile"), "--directory", str(work), *args, "--cores",
                           "1",
                           "--dry-run", "--printshellcmds"],
                          cwd=work, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def paper_jobs(tmp_path_factory, raw_placeholders):
    work = tmp_path_factory.mktemp("protocol_dry_run")
    raw_placeholders(work, REPO / "config" / "config.yaml", PAPER)
    run = _dry_run(work, PAPER)
    assert run.returncode == 0, run.stderr[-4000:]
    return jobs_of_dry_run(run.stdout + run.stderr)


def test_the_paper_jobs_receive_every_row(paper_jobs):
    assert check_jobs(load_config([PAPER]), paper_jobs) == []
    # every row with a config key is read back from some job, or is a value of the code itself
    assert all(row.probes or row.key is None or row.key == "regimes.datasets" for row in ROWS)


def test_every_sweep_runs_the_1000_step_sampler_with_sigma2_beta(paper_jobs):
    from diffusion_regimes.regimes import nearest_check_points
    from diffusion_regimes.sampler import DDPMAncestral

    sweeps = [j for j in paper_jobs if j.command in ("regimes-clone", "regimes-uturn")]
    assert len(sweeps) == 44
    assert {(j.flags["--steps"], j.flags["--variance"]) for j in sweeps} == {("1000", "large")}
    for job in (j for j in sweeps if j.command == "regimes-clone"):
        grid = DDPMAncestral.respaced(int(job.flags["--steps"])).ddpm_steps
        checked = [grid[i] for i in nearest_check_points(grid, job.spec["nearest_check_every"])]
        assert checked == list(range(1000, -1, -50))
        assert (job.spec["branch_grid"], job.spec["branch_every"], job.spec["branch_max_step"]) == ("steps",
                                                                                                    50, 1000)


def _changed(row):
    if row.changed is not None:
        return row.changed
    value = row.authors
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 2
    if isinstance(value, float):
        return value * 1.5
    raise AssertionError(f"row {row.name!r}: give `changed`")


def _overlay(path: Path, dotted: str, value) -> Path:
    mapping: dict = {}
    node = mapping
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    path.write_text(yaml.safe_dump(mapping))
    return path


KEYED = [row for row in ROWS if row.key is not None]


@pytest.mark.parametrize("row", KEYED, ids=[f"{row.key}:{row.name}" for row in KEYED])
def test_a_changed_row_value_in_an_overlay_fails_the_protocol(row, tmp_path):
    overlay = _overlay(tmp_path / "changed.yaml", row.key, _changed(row))
    verdict = next(v for v in compare(load_config([PAPER, overlay])) if v.row is row)
    assert verdict.status == "undocumented", (row.name, verdict.value)


def test_the_jobs_fail_the_check_when_the_overlay_changes_what_they_receive(tmp_path, raw_placeholders):
    overlay = _overlay(tmp_path / "posterior.yaml", "regimes.sampler_variance.unet", "posterior")
    raw_placeholders(tmp_path, REPO / "config" / "config.yaml", PAPER)
    run = _dry_run(tmp_path, PAPER, overlay)
    assert run.returncode == 0, run.stderr[-4000:]
    jobs = jobs_of_dry_run(run.stdout + run.stderr)
    problems = check_jobs(load_config([PAPER, overlay]), jobs)
    assert problems == ["step noise variance, UNet [regimes.sampler_variance.unet]: posterior, authors "
                        "large: an undocumented difference"]
    # and a row cannot claim what the jobs do not get: the paper config against these jobs
    claimed = check_jobs(load_config([PAPER]), jobs)
    wrong = "regimes-clone jobs {'--model': 'unet'} receive posterior through flag:--variance, not large"
    assert any(wrong in p for p in claimed), claimed


def test_an_empty_mapping_in_an_overlay_stops_the_run_before_any_job(tmp_path):
    overlay = tmp_path / "empty.yaml"
    overlay.write_text("regimes:\n  sampler_steps: {}\n")
    run = _dry_run(tmp_path, overlay)
    assert run.returncode != 0
    assert "`regimes.sampler_steps: {}` merges into {'exact': 100, 'unet': 100} and changes nothing" in (
        run.stdout + run.stderr)
    with pytest.raises(ConfigError, match="changes nothing"):
        load_config([overlay])


def test_the_protocol_command(capsys):
    from diffusion_regimes.cli import main

    assert main(["protocol", "--configfile", str(PAPER)]) == 0
    out = capsys.readouterr().out
    assert "0 undocumented" in out and "sampler steps, exact score" in out
    assert main(["protocol", "--configfile", str(REPO / "config" / "config.yaml")]) == 1
    out = capsys.readouterr().out
    assert re.search(r"! DIFFERS +sampler steps, exact score +100 ", out)
    assert "regimes.sampler_variance.unet]: posterior (authors: large)" in out


def test_the_readme_table_is_generated_from_the_rows():
    text = (REPO / "config" / "README.md").read_text()
    assert README_BEGIN in text and README_END in text
    table = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    assert table == markdown_table(), "regenerate it: python -m diffusion_regimes protocol --markdown " \
                                      "--configfile config/paper.yaml"
