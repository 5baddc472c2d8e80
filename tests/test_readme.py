"""Every snakemake command the README prints works as printed (issue 11), in dry-run form.

The commands are read from README.md itself (code blocks and inline code), so a command added or changed
there is tested without editing this file.  Each runs with ``-n`` in a temporary copy of the workflow
files, where nothing has been computed: a dry run then plans the whole DAG, which catches a target read
as a config file, an unknown option, a missing profile or an invalid config.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
# README placeholders and the values a dry run uses for them
PLACEHOLDERS = {"<table>": "spectra", "<rule>": "spectrum"}
# Commands that are not workflow runs: --report needs a finished run (tests/test_workflow.py builds it),
# --unlock only clears a lock.
NOT_DRY_RUNNABLE = ("--report", "--unlock")


def readme_commands(text: str) -> list[str]:
    """The snakemake command lines of the README: lines of fenced code blocks and inline code spans."""
    fenced = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.DOTALL)
    lines = [line for block in fenced for line in block.splitlines()]
    without_blocks = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    # inline spans may wrap over a line break in the Markdown source
    lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", without_blocks)]
    commands = []
    for line in lines:
        line = line.split(" #", 1)[0].strip()
        line = line.split("&&")[-1].strip()
        if re.match(r"^(\.venv/bin/)?snakemake(\s|$)", line):
            commands.append(re.sub(r"^\.venv/bin/", "", line))
    return list(dict.fromkeys(commands))


def test_readme_command_extraction_finds_the_documented_forms():
    commands = readme_commands(README.read_text())
    assert "snakemake --cores all" in commands
    assert any("--profile profiles/slurm" in c for c in commands)
    assert any("run_datasets" in c for c in commands)
    # every documented target comes before --configfile or after `--`
    for command in commands:
        words = shlex.split(command)
        if "--configfile" in words:
            after = words[words.index("--configfile") + 1:]
            values = []
            for word in after:
                if word.startswith("-"):
                    break
                values.append(word)
            assert all(v.endswith((".yaml", ".yml")) for v in values), f"{command}: {values} read as configs"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, raw_placeholders) -> Path:
    """The workflow files in a fresh folder (no results, no .snakemake), plus the overlay the README names."""
    root = tmp_path_factory.mktemp("checkout")
    for name in ("Snakefile", "workflow", "config", "profiles", "former"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy2(source, root / name)
    (root / "my.yaml").write_text("run_datasets: [mnist]\n")
    raw_placeholders(root, REPO / "config" / "config.yaml", REPO / "config" / "paper.yaml")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in readme_commands(README.read_text())
                                     if not any(flag in c for flag in NOT_DRY_RUNNABLE)])
def test_readme_command_dry_runs(command: str, checkout: Path) -> None:
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    if "config/fashion.yaml" in command and not (FASHION_DEBIAN / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist")
    exe = Path(sys.executable).with_name("snakemake")
    words = shlex.split(command)
    args = [str(exe), *words[1:]]
    if "--list-rules" not in words and "-n" not in words:
        args.insert(1, "-n")
    run = subprocess.run(args, cwd=checkout, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"{command}\n{output[-3000:]}"
    if "--list-rules" not in words:
        assert "This was a dry-run" in output or "Nothing to be done" in output, output[-2000:]
    assert not (checkout / "results").exists(), "a dry run wrote results"
