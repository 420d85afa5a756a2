#!/usr/bin/env bash
# Stop the one-node SLURM cluster that tests/cluster/start_slurm.sh started: slurmd, slurmctld,
# slurmdbd, MariaDB and munged, each found by its pid file under $EMBAUG_SLURM_DIR (default
# /tmp/embaug-slurm) and killed only if that pid still runs the expected program. Idempotent:
# nothing running is not an error. State (accounting database, job history) is kept, so a later
# start_slurm.sh resumes it; `tests/cluster/stop_slurm.sh --purge` also deletes $EMBAUG_SLURM_DIR.
set -euo pipefail

DIR=${EMBAUG_SLURM_DIR:-/tmp/embaug-slurm}
PURGE=0
[[ ${1:-} == --purge ]] && PURGE=1

pidfile() {
    case $1 in munged) echo "$DIR/munge/munged.pid" ;; mariadb) echo "$DIR/mysql-run/mariadb.pid" ;;
        *) echo "$DIR/run/$1.pid" ;; esac
}

stop() {  # stop NAME EXE: SIGTERM, wait up to 30 s, then SIGKILL
    local pidf pid i
    pidf=$(pidfile "$1")
    [[ -s $pidf ]] || { echo "stop_slurm: $1 not running (no pid file)"; return 0; }
    pid=$(<"$pidf")
    if [[ ! $pid =~ ^[0-9]+$ ]] || [[ ! -d /proc/$pid ]] || ! grep -qa "$2" "/proc/$pid/cmdline" 2>/dev/null; then
        echo "stop_slurm: $1 not running (stale pid file)"
        rm -f "$pidf"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        [[ -d /proc/$pid ]] || break
        sleep 0.5
    done
    if [[ -d /proc/$pid ]]; then
        echo "stop_slurm: $1 (pid $pid) still running after 30s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidf"
    echo "stop_slurm: stopped $1 (pid $pid)"
}

[[ -d $DIR ]] || { echo "stop_slurm: $DIR does not exist, nothing to stop"; exit 0; }
# cancel this cluster's jobs first, so that no job step (slurmstepd) outlives slurmd
export SLURM_CONF=$DIR/etc/slurm.conf
if [[ -s $DIR/run/slurmctld.pid ]] && timeout 10 scontrol ping 2>/dev/null | grep -q UP; then
    mapfile -t jobs < <(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if ((${#jobs[@]})); then
        echo "stop_slurm: cancelling jobs ${jobs[*]}"
        timeout 10 scancel "${jobs[@]}" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do
            [[ -z $(timeout 10 squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
fi
stop slurmd slurmd
stop slurmctld slurmctld
stop slurmdbd slurmdbd
stop mariadb mariadbd
stop munged munged
if ((PURGE)); then
    rm -rf "$DIR"
    # the /etc/slurm/slurm.conf link start_slurm.sh made, if it points into $DIR
    if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$DIR"/* ]]; then
        rm -f /etc/slurm/slurm.conf
    fi
    echo "stop_slurm: removed $DIR"
fi
