"""Fill profiles/slurm for the CI cluster, as a user would: placeholders -> this cluster's names.

Usage: python .ci/slurm_profile.py OUT_DIR cpu=<partition> gpu=<partition>

Copies profiles/slurm/{config,partitions}.yaml to OUT_DIR with the partition placeholders replaced and
the account placeholder removed (the CI cluster has no accounting database, so accounts cannot be
checked), plus the settings a cluster without accounting needs (`squeue` status queries) and short
status-check intervals.  Any placeholder left over is an error: a new one must be filled here too.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "slurm"
PLACEHOLDER = re.compile(r"<[^<>]+>")


def main(out_dir: str, cpu: str, gpu: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((PROFILE / "config.yaml").read_text())
    partitions = yaml.safe_load((PROFILE / "partitions.yaml").read_text())

    names = {"<cpu-partition>": cpu, "<gpu-partition>": gpu}
    partitions["partitions"] = {names.get(k, k): v for k, v in partitions["partitions"].items()}
    config["default-resources"].pop("slurm_account", None)
    config.update(
        {
            "slurm-partition-config": str(out / "partitions.yaml"),
            "slurm-status-command": "squeue",  # no slurmdbd: sacct cannot answer
            "slurm-init-seconds-before-status-checks": 5,  # CI slurm.conf: MinJobAge=600 >= 3 x 5 s
            "slurm-keep-successful-logs": True,  # the e2e check reads job ids from them
            "jobs": 4,
        }
    )
    for name, data in (("config.yaml", config), ("partitions.yaml", partitions)):
        text = yaml.safe_dump(data, sort_keys=False)
        if left := PLACEHOLDER.findall(text):
            sys.exit(f"{name}: placeholders not filled for CI: {left} (add them to .ci/slurm_profile.py)")
        (out / name).write_text(text)


if __name__ == "__main__":
    args = dict(a.split("=", 1) for a in sys.argv[2:])
    main(sys.argv[1], cpu=args["cpu"], gpu=args["gpu"])
