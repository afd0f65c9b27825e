#!/usr/bin/env bash
# A single-node SLURM (slurmctld + slurmd + munged) for the tests, from Debian's packages,
# without systemd. The recipe and its pitfalls: shared/research/slurm-spike.md.
#
#   slurm_testbed.sh install        apt-get install the daemons if missing (root)
#   slurm_testbed.sh up DIR         write DIR/slurm.conf, start the daemons, wait until idle
#   slurm_testbed.sh down DIR       cancel our jobs, stop the daemons we started (by PID)
#
# Everything lives in DIR (state, spool, logs, *.pid.own); export SLURM_CONF=DIR/slurm.conf
# for sbatch/squeue/scancel. Only the PIDs recorded from $! are ever signalled. The daemons
# use the fixed ports 6817/6818 and the munge socket: one such cluster per machine.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # the daemons live in sbin, not on every user's PATH

cmd=${1:-}
D=${2:-}

running() { case "$(ps -o stat= -p "$1" 2>/dev/null)" in ""|Z*) return 1;; esac; }

own_pid_running() { [ -f "$D/$1.pid.own" ] && running "$(cat "$D/$1.pid.own")"; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
            && command -v munged >/dev/null && command -v sbatch >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "slurm_testbed: installing slurm needs root" >&2; exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
}

down() {
    [ -n "$D" ] || { echo "usage: $0 down DIR" >&2; exit 2; }
    export SLURM_CONF="$D/slurm.conf"
    # Slurm CLIs hang ~20 s without a controller: only ask ours, and never for long.
    if own_pid_running slurmctld; then
        timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1 || true
    fi
    for f in slurmd slurmctld munged; do
        [ -f "$D/$f.pid.own" ] || continue
        pid=$(cat "$D/$f.pid.own")
        if running "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 80); do running "$pid" || break; sleep 0.1; done
            if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
        fi
        rm -f "$D/$f.pid.own"
    done
}

up() {
    [ -n "$D" ] || { echo "usage: $0 up DIR" >&2; exit 2; }
    [ "$(id -u)" -eq 0 ] || { echo "slurm_testbed: the daemons run as root" >&2; exit 1; }
    down  # a second slurmctld/slurmd over a running one would kill it (spike pitfall 3)
    rm -rf "$D/state" "$D/spool"  # no jobs of an earlier (crashed) session come back
    mkdir -p "$D/state" "$D/spool" "$D/log"
    cpus=${SLURM_TESTBED_CPUS:-8}   # overcommit: more single-core worker jobs than cores
    cat > "$D/slurm.conf" <<EOF
ClusterName=daskfarm
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=4096 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$D/slurm.conf"
    if ! munge -n >/dev/null 2>&1; then  # reuse a munged that already answers
        if [ ! -s /etc/munge/munge.key ]; then
            mungekey --create --force >/dev/null 2>&1
            chown munge:munge /etc/munge/munge.key
        fi
        install -d -o munge -g munge -m 755 /run/munge
        setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F \
            >"$D/log/munged.out" 2>&1 &
        echo $! > "$D/munged.pid.own"
        for _ in $(seq 100); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
        if ! munge -n >/dev/null 2>&1; then
            echo "slurm_testbed: munged did not start:" >&2; cat "$D/log/munged.out" >&2
            down; exit 1
        fi
    fi
    slurmctld -D -i >"$D/log/slurmctld.out" 2>&1 &
    echo $! > "$D/slurmctld.pid.own"
    slurmd -D -N localhost >"$D/log/slurmd.out" 2>&1 &
    echo $! > "$D/slurmd.pid.own"
    deadline=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$deadline" ]; do
        state=$(timeout 3 sinfo -h -n localhost -o %t 2>/dev/null || true)
        [ "$state" = idle ] && return 0
        sleep 0.2
    done
    echo "slurm_testbed: the node did not become idle (state: ${state:-none}); logs in $D/log" >&2
    down
    exit 1
}

case "$cmd" in
    install) install_packages ;;
    up) up ;;
    down) down ;;
    *) echo "usage: $0 install | up DIR | down DIR" >&2; exit 2 ;;
esac
