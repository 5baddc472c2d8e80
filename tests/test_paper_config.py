"""config/paper.yaml schedules the authors' protocol (issue 16): a Snakemake dry run on stand-in raw data."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def commands(tmp_path_factory, raw_placeholders) -> dict[str, list[dict]]:
    """The --spec JSON of every scheduled CLI call, by command name (``snakemake -n -p``)."""
    work = tmp_path_factory.mktemp("paper_dry_run")
    raw_placeholders(work, REPO / "config" / "config.yaml", REPO / "config" / "paper.yaml")
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    run = subprocess.run(
        [*cmd, "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile",
         str(REPO / "config" / "paper.yaml"), "--cores", "1", "--dry-run", "--printshellcmds"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    found: dict[str, list[dict]] = {}
    for match in re.finditer(r"\$DIFFUSION_REGIMES (\S+) --spec '([^']*)'(.*)", run.stdout + run.stderr):
        name, spec, rest = match.groups()
        found.setdefault(name, []).append({"spec": json.loads(spec), "args": rest})
    return found


def _by_name(calls: list[dict], flag: str, value: str) -> dict:
    hits = [c for c in calls if re.search(rf"{flag} {value}(\s|$)", c["args"])]
    assert len(hits) == 1, (flag, value, [c["args"][:80] for c in calls])
    return hits[0]


def test_paper_dry_run_schedules_the_authors_subsets(commands):
    prepared = {re.search(r"--name (\S+)", c["args"]).group(1): c["spec"] for c in commands["prepare-subset"]}
    assert set(prepared) == {"mnist", "cifar10", "imagenet16", "imagenet32", "lsun", "lsun_n200"}
    assert prepared["mnist"]["classes"] == ["1", "8"] and prepared["mnist"]["n"] == 10000
    assert all(spec["selection"] == "first" for spec in prepared.values())
    for name in ("imagenet16", "imagenet32"):
        assert prepared[name]["labels"] == [7, 367] and prepared[name]["batches"] == list(range(1, 10))


def test_paper_dry_run_uses_the_authors_training_and_measurement_values(commands):
    train = _by_name(commands["train-ddpm"], "--dataset", "lsun_n200")
    assert train["spec"]["bf16"] is False and train["spec"]["batch_size_by_dataset"]["lsun_n200"] == 64
    unet = json.loads(re.search(r"--unet-spec '([^']*)'", train["args"]).group(1))
    assert unet["preset"] == "paper" and all(v is None for k, v in unet.items() if k != "preset")
    classifier = commands["classifier-train"][0]["spec"]
    assert classifier["pretrained"].endswith("resnet18-f37072fd.pth") and classifier["resize"] == 224
    assert (classifier["epochs"], classifier["batch_size"], classifier["lr_gamma"]) == (10, 64, 0.1)
    clone = next(c for c in commands["regimes-clone"] if "--sampler ddpm " in c["args"])
    # the per-model keys are resolved by the workflow and passed on their own
    assert clone["spec"]["nearest_check_every"] == 50 and re.search(r"--pairs 4000\b", clone["args"])
    entropy = commands["regimes-entropy"][0]["spec"]
    assert (entropy["entropy_grid"], entropy["entropy_step_every"]) == ("ddpm_steps", 50)
    collapse = commands["gm-collapse"][0]["spec"]["collapse"]
    grid = (collapse["grid"], collapse["t_max"], collapse["t_min"], collapse["n_times"])
    assert grid == ("linear", 8.0, 0.552, 20)
