# Single-node SLURM for CI (sourced by .ci/slurm-e2e.sh): install Debian's slurm-wlm + munge, write a
# slurm.conf for this host, start munged/slurmctld/slurmd as background processes and stop them by PID.
# No systemd and no accounting database (slurmdbd): `sacct` does not work here, so the executor plugin
# must query job states with `squeue` and slurmctld must keep finished jobs visible long enough
# (MinJobAge below).
#
# Everything the daemons write lives under $SLURM_CI_STATE (logs, spool, state, pid files).

SLURM_CI_STATE=${SLURM_CI_STATE:-/tmp/slurm-ci}
SLURM_CI_PIDS=()

slurm_install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        echo "slurm: slurm-wlm and munge already installed"
        return
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "slurm: installing slurm-wlm and munge needs root (apt-get)" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

# slurm_configure <partition_cpu> <partition_gpu>
slurm_configure() {
    local cpu_partition=$1 gpu_partition=$2
    local real_cpus real_mem
    real_cpus=$(nproc)
    real_mem=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
    rm -rf "$SLURM_CI_STATE"  # a fresh cluster: no node or job state from an earlier run
    mkdir -p "$SLURM_CI_STATE"/{ctld,spool} /etc/slurm
    # The node advertises at least 16 CPUs, 64 GiB and one GPU (a fake device, /dev/null), more
    # than a CI runner has: rules ask for their cluster-scale cpus_per_gpu / mem_mb / gpu=1, and SLURM
    # would reject those at submission on a 2-core runner.  Nothing is enforced here (no cgroups, memory
    # is not a consumable resource); `--jobs` in the profile bounds how much runs at once.
    # SlurmdParameters=config_overrides makes slurmd report these values instead of the hardware's.
    local cpus=$((real_cpus > 16 ? real_cpus : 16))
    local mem=$((real_mem > 65536 ? real_mem : 65536))
    cat >/etc/slurm/slurm.conf <<EOF
# Written by .ci/slurm-lib.sh: single-node CI cluster on localhost (real: ${real_cpus} CPUs, ${real_mem} MiB).
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SLURM_CI_STATE/ctld
SlurmdSpoolDir=$SLURM_CI_STATE/spool
SlurmctldPidFile=$SLURM_CI_STATE/slurmctld.pid
SlurmdPidFile=$SLURM_CI_STATE/slurmd.pid
SlurmctldLogFile=$SLURM_CI_STATE/slurmctld.log
SlurmdLogFile=$SLURM_CI_STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
# Finished jobs stay visible to squeue for 10 minutes: the plugin's squeue status query needs
# MinJobAge >= 3 x its first status-check interval, else it falls back to sacct (no database here).
MinJobAge=600
SchedulerParameters=defer_batch=0
GresTypes=gpu
NodeName=localhost CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=$cpu_partition Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=$gpu_partition Nodes=localhost Default=NO MaxTime=INFINITE State=UP
EOF
    cat >/etc/slurm/gres.conf <<EOF
# A fake GPU so that CI exercises the --gpus request and partition routing without a device.  slurmd
# 22.05 ignores a gpu GRES without File=; /dev/null is a device node that every machine has.  Jobs see
# CUDA_VISIBLE_DEVICES=0, which a CPU-only torch ignores (runtime.resolve_device picks the CPU).
NodeName=localhost Name=gpu File=/dev/null
EOF
}

slurm_start() {
    # munge: the Debian package creates /etc/munge/munge.key; munged runs as the munge user.
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    local i
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        echo "slurm: using the munged already running here"
    else
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge
        rm -f /run/munge/munged.pid
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
        for i in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
        SLURM_CI_PIDS+=("$(cat /run/munge/munged.pid)")
        munge -n | unmunge >/dev/null
    fi
    if scontrol ping 2>/dev/null | grep -q UP; then
        echo "slurm: a slurmctld already answers on this machine; stop it first" >&2
        return 1
    fi

    # -D: stay in the foreground, so that $! is the daemon's PID (stopped by that PID on exit).
    # -c: start from a clean state (no jobs or drained nodes from an earlier run).
    # setsid: a process group of their own, so that a signal to the caller's group (`timeout`, Ctrl-C)
    # leaves them up until slurm_stop: cancelling the jobs still needs them.
    setsid slurmctld -D -c >>"$SLURM_CI_STATE/slurmctld.stdout" 2>&1 &
    SLURM_CI_PIDS+=("$!")
    for i in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
    setsid slurmd -D -N localhost >>"$SLURM_CI_STATE/slurmd.stdout" 2>&1 &
    SLURM_CI_PIDS+=("$!")
    slurm_wait_idle 60
}

# slurm_wait_idle <seconds>: wait until the node accepts jobs (state idle or mixed).
slurm_wait_idle() {
    local deadline=$((SECONDS + $1)) state
    while ((SECONDS < deadline)); do
        state=$(sinfo -h -N -n localhost -o %t 2>/dev/null | head -n1)
        if [[ $state == idle* || $state == mix* ]]; then
            echo "slurm: node localhost is $state"
            return 0
        fi
        sleep 1
    done
    echo "slurm: node localhost not idle after $1 s (state: ${state:-unknown})" >&2
    sinfo -N -l >&2 || true
    return 1
}

slurm_logs() {
    local f
    for f in slurmctld.log slurmd.log slurmctld.stdout slurmd.stdout; do
        [[ -f $SLURM_CI_STATE/$f ]] || continue
        echo "----- $SLURM_CI_STATE/$f (last 60 lines) -----"
        tail -n 60 "$SLURM_CI_STATE/$f"
    done
}

# slurm_cancel_all: cancel every job of this private cluster and wait until none runs, so that no job
# step outlives slurmd.
slurm_cancel_all() {
    squeue --noheader --format=%i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    local i
    for i in $(seq 60); do
        [[ -z $(squeue --noheader --states=running,completing,configuring 2>/dev/null) ]] && return 0
        sleep 0.5
    done
    echo "slurm: jobs still running after scancel" >&2
}

# Stop the daemons this shell started, by PID (slurmd, slurmctld, then munged).
slurm_stop() {
    local i pid
    for ((i = ${#SLURM_CI_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${SLURM_CI_PIDS[i]}
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    SLURM_CI_PIDS=()
}
