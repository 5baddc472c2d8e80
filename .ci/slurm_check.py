"""Checks of the SLURM end-to-end run (.ci/slurm-e2e.sh).

  python .ci/slurm_check.py jobs LOCAL_LOG SLURM_LOG GPU_PARTITION
      every job of the local run ran as a SLURM job (or as a local rule in both runs), each SLURM job
      id the executor reported is COMPLETED in squeue, and GPU jobs went to the GPU partition.
  python .ci/slurm_check.py tables LOCAL_DIR SLURM_DIR
      both runs wrote the same results/tables/*.csv with equal values (provenance sidecars, which hold
      timestamps and hosts, and wall-clock columns such as elapsed_s are not compared).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

RULE = re.compile(r"^(local)?rule (\S+):$", re.MULTILINE)
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: \S*/rule_([^/]+)/")

# Same code, seeds and thread counts on the same machine: tables should agree bit for bit.  The
# tolerance only absorbs a different floating-point summation order (threads, BLAS kernels); a real
# divergence (wrong inputs, a job that ran twice with other randomness) is orders of magnitude larger.
RTOL, ATOL = 1e-6, 1e-10

# Columns that record how long something took on this machine (throughput, wall time): they differ
# between any two runs and are not results.
# Columns that time the run, not measure the science: they differ between any two runs. Every table names
# such a column with one of these endings (train_seconds, sweep_seconds, elapsed_s, images_per_s, ...).
WALL_CLOCK_SUFFIXES = ("seconds", "elapsed_s", "per_s")


def is_wall_clock(column: str) -> bool:
    return column.endswith(WALL_CLOCK_SUFFIXES)


def check_jobs(local_log: str, slurm_log: str, gpu_partition: str) -> None:
    local_text, slurm_text = Path(local_log).read_text(), Path(slurm_log).read_text()
    local_jobs = Counter(name for _, name in RULE.findall(local_text))
    submitted = SUBMITTED.findall(slurm_text)
    ran_here = Counter(name for local, name in RULE.findall(slurm_text) if local)
    on_slurm = Counter(rule for _, rule in submitted)
    if not submitted:
        sys.exit("no job was submitted to SLURM (the tiny workflow has no jobs?)")
    if on_slurm + ran_here != local_jobs:
        sys.exit(f"jobs differ: local run {dict(local_jobs)}, "
                 f"SLURM {dict(on_slurm)} + local rules {dict(ran_here)}")

    fields = "JobID:20,Partition:20,State:20,tres-per-job:30,Comment:200"
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--Format={fields}"],
        capture_output=True, text=True, check=True,
    ).stdout
    queue = {}
    for line in out.splitlines():
        job_id, partition, state, tres = (line[i : i + 20].strip() for i in (0, 20, 40, 60))
        queue[job_id] = (partition, state, "gpu" in tres)
    problems = []
    for job_id, rule in submitted:
        if job_id not in queue:
            problems.append(f"SLURM job {job_id} (rule {rule}) unknown to squeue")
            continue
        partition, state, gpu = queue[job_id]
        if state != "COMPLETED":
            problems.append(f"SLURM job {job_id} (rule {rule}) is {state}")
        if gpu != (partition == gpu_partition):
            problems.append(f"SLURM job {job_id} (rule {rule}, gpu={gpu}) ran in partition {partition}")
    if problems:
        sys.exit("\n".join(problems))
    n_gpu = sum(queue[j][2] for j, _ in submitted)
    print(f"slurm: {len(submitted)} jobs ran under SLURM ({n_gpu} on the GPU partition), "
          f"{sum(ran_here.values())} local rules; rules: {dict(on_slurm)}")


def check_tables(local_dir: str, slurm_dir: str) -> None:
    tables = {d: sorted(p.name for p in (Path(d) / "results" / "tables").glob("*.csv"))
              for d in (local_dir, slurm_dir)}
    if tables[local_dir] != tables[slurm_dir]:
        sys.exit(f"different tables: local {tables[local_dir]}, SLURM {tables[slurm_dir]}")
    if not tables[local_dir]:
        sys.exit("no tables under results/tables/ to compare")
    problems = []
    for name in tables[local_dir]:
        a = pd.read_csv(Path(local_dir) / "results" / "tables" / name)
        b = pd.read_csv(Path(slurm_dir) / "results" / "tables" / name)
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            problems.append(f"{name}: columns/shape differ: {list(a.columns)} {a.shape} "
                            f"vs {list(b.columns)} {b.shape}")
            continue
        for col in a.columns:
            if is_wall_clock(col):
                continue
            x, y = a[col], b[col]
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                ok = np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=RTOL, atol=ATOL, equal_nan=True)
            else:
                ok = x.astype(str).equals(y.astype(str))
            if not ok:
                problems.append(f"{name}: column {col!r} differs")
    if problems:
        sys.exit("\n".join(problems))
    print(f"slurm: {len(tables[local_dir])} tables equal to the local run: {', '.join(tables[local_dir])}")


if __name__ == "__main__":
    {"jobs": check_jobs, "tables": check_tables}[sys.argv[1]](*sys.argv[2:])
