#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing tools/slurm_*.sh (tests/test_launchers.py).
#   tools/ci/local_slurm.sh install     installs Debian's slurm-wlm and munge when missing (root)
#   tools/ci/local_slurm.sh start DIR   installs them when missing, starts munged, slurmctld and
#                                       slurmd with every file under DIR and waits until the node
#                                       takes jobs
#   tools/ci/local_slurm.sh stop DIR    stops the daemons that start left running
# Then SLURM_CONF=DIR/slurm.conf srun -p ci ... runs jobs on it. Nothing outside DIR is written
# (apart from the packages): the munge key, sockets, state, spool and logs all live there.
# Containers have no systemd and often no writable cgroups: processes are tracked through /proc,
# tasks are not bound, and the node's CPUs and memory are taken from this file, not the hardware.
# Environment: SLURM_CPUS (2), SLURMCTLD_PORT (6817), SLURMD_PORT (6818).
set -euo pipefail

ACTION=${1:-}
DIR=${2:-}
if [[ "$ACTION" != install && ( -z "$DIR" || ( "$ACTION" != start && "$ACTION" != stop ) ) ]]
then
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
fi

fail() {  # the reason, then the end of each log
    echo "local_slurm: $1" >&2
    for log in ${DIR:+"$DIR"/*.log}; do
        [[ -s "$log" ]] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}

install() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v srun >/dev/null && command -v munged >/dev/null && return 0
    [[ $(id -u) == 0 ]] \
        || fail "slurm-wlm and munge are not installed, and installing them needs root"
    echo "local_slurm: installing slurm-wlm and munge (apt-get)" >&2
    local output
    output=$(export DEBIAN_FRONTEND=noninteractive
             apt-get update -qq 2>&1 && apt-get install -y -qq slurm-wlm munge 2>&1) \
        || fail "apt-get install slurm-wlm munge failed: $(tail -n 5 <<<"$output")"
}

if [[ "$ACTION" == install ]]; then
    install
    exit 0
fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

stop_daemon() {  # pid file: TERM, then KILL after 10 s
    local pid
    [[ -f "$1" ]] || return 0
    pid=$(cat "$1")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

if [[ "$ACTION" == stop ]]; then
    stop_daemon "$DIR/slurmd.pid"
    stop_daemon "$DIR/slurmctld.pid"
    stop_daemon "$DIR/munged.pid"
    exit 0
fi

install
[[ $(id -u) == 0 ]] \
    || fail "the daemons run as root here (SlurmUser, SlurmdUser, munged): run as root"

CPUS=${SLURM_CPUS:-2}
mkdir -p "$DIR/state" "$DIR/spool"
chmod 700 "$DIR"
if [[ ! -s "$DIR/munge.key" ]]; then
    head -c 1024 /dev/urandom >"$DIR/munge.key"
    chmod 400 "$DIR/munge.key"
fi

cat >"$DIR/slurm.conf" <<EOF
ClusterName=mmssm-ci
SlurmctldHost=localhost
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1024 State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
# daemons of an earlier start with this DIR
bash "$0" stop "$DIR"
rm -f "$DIR"/*.log

# --force: munged wants the folder of its socket open to every user, and DIR is root's alone (0700)
munged --force --socket="$DIR/munge.socket" --key-file="$DIR/munge.key" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed" \
    || fail "munged did not start"
export SLURM_CONF="$DIR/slurm.conf"
# -i: forget the jobs of an earlier start
slurmctld -i || fail "slurmctld did not start"
slurmd -N localhost || fail "slurmd did not start"
deadline=$((SECONDS + 60))
while (( SECONDS < deadline )); do
    for daemon in munged slurmctld slurmd; do
        if [[ -f "$DIR/$daemon.pid" ]] && ! kill -0 "$(cat "$DIR/$daemon.pid")" 2>/dev/null; then
            fail "$daemon stopped after it started"
        fi
    done
    # a controller that does not answer keeps sinfo waiting for minutes
    state=$(timeout 5 sinfo -h -n localhost -o %T 2>/dev/null || true)
    [[ "$state" == idle ]] && exit 0
    sleep 0.5
done
fail "the node is not idle after 60 s (sinfo says: ${state:-nothing})"
