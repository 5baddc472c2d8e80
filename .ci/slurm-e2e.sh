#!/usr/bin/env bash
# SLURM end to end: a single-node SLURM on this machine runs config/tiny.yaml through profiles/slurm
# (placeholders filled as a user would), and the result must equal a local run of the same config.
# Needs root on Debian/Ubuntu (apt-get install slurm-wlm munge) and the .venv that .ci/run builds.
# Stops every daemon it started, by PID, on exit.  Timings are printed as "time: <step> <seconds> s".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SNAKEMAKE=$ROOT/.venv/bin/snakemake
PYTHON=$ROOT/.venv/bin/python
WORK=$(mktemp -d "${TMPDIR:-/tmp}/slurm-e2e.XXXXXX")
export SLURM_CI_STATE=$WORK/slurm-state
CPU_PARTITION=cpu
GPU_PARTITION=gpu
# shellcheck source=.ci/slurm-lib.sh
source "$ROOT/.ci/slurm-lib.sh"

status=1
WORKFLOW_PID=
cleanup() {
    # Snakemake first, while slurmctld is up: on INT it cancels its SLURM jobs (on TERM it would wait
    # for them), and without slurmctld its status queries would never end.
    # Snakemake runs in its own process group (setsid), so its local jobs go with it.
    if [[ -n $WORKFLOW_PID ]] && kill -0 "$WORKFLOW_PID" 2>/dev/null; then
        kill -INT -- "-$WORKFLOW_PID" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$WORKFLOW_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 -- "-$WORKFLOW_PID" 2>/dev/null || true
    fi
    # Whatever is left in this private cluster's queue was submitted by this script.
    slurm_cancel_all
    if [[ $status -ne 0 ]]; then
        echo "slurm-e2e: FAILED; daemon logs and queue follow" >&2
        squeue --states=all -l 2>/dev/null || true
        slurm_logs || true
    fi
    slurm_stop
    if [[ $status -eq 0 ]]; then
        rm -rf "$WORK"
        echo "slurm-e2e: daemons stopped"
    else
        echo "slurm-e2e: daemons stopped; runs, logs and cluster state kept in $WORK" >&2
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

step() { # step <name> <command...>: run and print how long it took
    local name=$1 t0=$SECONDS
    shift
    "$@"
    echo "time: $name $((SECONDS - t0)) s"
}

step install slurm_install
slurm_configure "$CPU_PARTITION" "$GPU_PARTITION"
step daemons slurm_start

# Both runs use the repository's Snakefile from their own working directory, so results/ stay apart.
run_workflow() { # run_workflow <dir> <snakemake args...>
    local dir=$WORK/$1
    shift
    mkdir -p "$dir"
    ln -sfn "$ROOT/resources" "$dir/resources"
    # In the background so that the EXIT trap knows its PID; `exec setsid` makes $! Snakemake's own PID
    # and the ID of a new process group holding Snakemake and its local jobs.
    (cd "$dir" && exec setsid "$SNAKEMAKE" --snakefile "$ROOT/Snakefile" --configfile "$ROOT/config/tiny.yaml" \
        --max-threads "$(nproc)" "$@" >"$dir/snakemake.log" 2>&1) &
    WORKFLOW_PID=$!
    wait "$WORKFLOW_PID" || {
        echo "slurm-e2e: snakemake in $dir failed; its log ends with:" >&2
        tail -n 80 "$dir/snakemake.log" >&2
        return 1
    }
    WORKFLOW_PID=
}

"$PYTHON" "$ROOT/.ci/slurm_profile.py" "$WORK/profile" cpu="$CPU_PARTITION" gpu="$GPU_PARTITION"
step local-run run_workflow local --cores "$(nproc)"
step slurm-run run_workflow slurm --profile "$WORK/profile"

"$PYTHON" "$ROOT/.ci/slurm_check.py" jobs \
    "$WORK/local/snakemake.log" "$WORK/slurm/snakemake.log" "$GPU_PARTITION"
"$PYTHON" "$ROOT/.ci/slurm_check.py" tables "$WORK/local" "$WORK/slurm"
status=0
echo "slurm-e2e: OK"
