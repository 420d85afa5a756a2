#!/usr/bin/env bash
# Start a real one-node SLURM cluster (SLURM 22.05 from Debian bookworm) with accounting on this
# machine, for trying the workflow's SLURM profile against a real scheduler. Needs root and apt.
#
#   tests/cluster/start_slurm.sh               # (as root) installs what is missing, starts, prints env vars
#   eval "$(tests/cluster/start_slurm.sh --env)"   # (re)start if needed and export SLURM_CONF
#   tests/cluster/stop_slurm.sh                # stops what this script started
#
# Everything (configs, munge key and socket, MariaDB data, spool, state, logs, pid files) lives in
# one folder: $EMBAUG_SLURM_DIR (default /tmp/embaug-slurm):
#   etc/slurm.conf, etc/slurmdbd.conf, etc/gres.conf   SLURM configuration
#   log/{munged,mariadb,slurmdbd,slurmctld,slurmd}.log  daemon logs
#   run/*.pid, munge/munged.pid, mysql-run/mariadb.pid pid files (stop_slurm.sh reads them)
# SLURM commands find the configuration through SLURM_CONF=$EMBAUG_SLURM_DIR/etc/slurm.conf (the
# script prints the export line). Unless EMBAUG_SLURM_LINK_ETC=0, /etc/slurm/slurm.conf is also
# made a symlink to it (only if /etc/slurm/slurm.conf is absent or already such a link), so
# `sbatch`, `sacct`, ... and the Snakemake SLURM executor plugin work without SLURM_CONF.
#
# The cluster (ClusterName=embaug, node = this host, `hostname -s`):
#   * node: CPUs=16, RealMemory=64000 MB, Gres=gpu:4, more than the machine has
#     (SlurmdParameters=config_overrides), so jobs asking for 8 CPUs or 16 GB run on a small box;
#     GPUs are a generic resource (GresTypes=gpu) whose device files are stand-ins under
#     $EMBAUG_SLURM_DIR/dev (22.05 refuses a GPU without File=, see gres.conf below);
#     `sbatch --gpus=1` / `--gres=gpu:1` jobs run with CUDA_VISIBLE_DEVICES=0 but no real GPU.
#   * partitions: cpu (default) and gpu, both on that node (so CPU jobs can also use the GRES).
#   * accounting: slurmdbd on a private MariaDB (127.0.0.1:$EMBAUG_SLURM_DB_PORT, default 13306),
#     AccountingStorageEnforce=associations,limits; account `embaug` with user root.
#   * limits enforced without cgroups: proctrack/linuxproc, task/none, jobacct_gather/linux every
#     2 s with JobAcctGatherParams=OverMemoryKill: a job over its --mem is killed within ~2 s
#     (sacct: State FAILED, ExitCode 0:9, batch step CANCELLED; OUT_OF_MEMORY would need
#     task/cgroup); a job over its --time is killed by slurmctld (State TIMEOUT, up to ~30 s late).
#   * daemons run as root (SlurmUser=root), started directly (no systemd), each with its own
#     munge socket / DB port / pid file under $EMBAUG_SLURM_DIR, so a system munged or MariaDB
#     is left alone.
# Idempotent: a second run finds the daemons running (scontrol ping, node idle) and exits 0; a run
# after stop_slurm.sh restarts them on the kept state (job history, accounts). Config changes in
# this script reach a running cluster only through stop_slurm.sh + start_slurm.sh. A daemon that
# does not come up within its timeout ends the script with exit 1, its name and its log's tail.
set -euo pipefail

DIR=${EMBAUG_SLURM_DIR:-/tmp/embaug-slurm}
DB_PORT=${EMBAUG_SLURM_DB_PORT:-13306}
ACCOUNT=${EMBAUG_SLURM_ACCOUNT:-embaug}
LINK_ETC=${EMBAUG_SLURM_LINK_ETC:-1}
ENV_ONLY=0
[[ ${1:-} == --env ]] && ENV_ONLY=1
NODE=$(hostname -s)
export SLURM_CONF=$DIR/etc/slurm.conf

say() { if ((ENV_ONLY)); then echo "start_slurm: $*" >&2; else echo "start_slurm: $*"; fi; }
die() { echo "start_slurm: ERROR: $*" >&2; exit 1; }
print_env() {
    if ((ENV_ONLY)); then
        echo "export SLURM_CONF=$SLURM_CONF"
    else
        cat <<EOF
start_slurm: cluster 'embaug' is up on node $NODE (partitions cpu*, gpu; account $ACCOUNT)
# for the SLURM commands (needed unless /etc/slurm/slurm.conf links to it):
export SLURM_CONF=$SLURM_CONF
# stop: tests/cluster/stop_slurm.sh      logs: $DIR/log/
EOF
    fi
}

[[ $(id -u) == 0 ]] || die "needs root (apt-get, daemons)"

write_conf() {  # write_conf FILE < TEXT: replace FILE at once (commands reading it never see it half-written)
    cat >"$1.new" && mv -f "$1.new" "$1"
}

# ---- pid helpers ----------------------------------------------------------------------------
pidfile() {  # where each daemon writes its pid (munged and mariadbd run as munge, mysql)
    case $1 in munged) echo "$DIR/munge/munged.pid" ;; mariadb) echo "$DIR/mysql-run/mariadb.pid" ;;
        *) echo "$DIR/run/$1.pid" ;; esac
}
alive() {  # alive NAME EXE: NAME's pid file names a live process running EXE
    local pidf pid
    pidf=$(pidfile "$1")
    [[ -s $pidf ]] || return 1
    pid=$(<"$pidf")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -d /proc/$pid ]] || return 1
    grep -qa "$2" "/proc/$pid/cmdline" 2>/dev/null
}
wait_for() {  # wait_for SECONDS DAEMON LOG COMMAND...: poll COMMAND until it succeeds
    local secs=$1 name=$2 log=$3; shift 3
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [[ -n ${WATCH_PID:-} && ! -d /proc/$WATCH_PID ]]; then  # the daemon we started died
            echo "start_slurm: ERROR: $name exited while starting; last lines of its log $log:" >&2
            tail -n 20 "$log" >&2 2>/dev/null || true
            exit 1
        fi
        if ((SECONDS >= end)); then
            echo "start_slurm: ERROR: $name not ready after ${secs}s; last lines of its log $log:" >&2
            tail -n 20 "$log" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.5
    done
}
node_ready() {  # the node is up (idle, mixed, allocated, ...), not down/unknown/drained
    local st
    st=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1)
    [[ $st =~ ^(idle|mix|mixed|alloc|allocated|comp|completing)$ ]]
}

if alive munged munged && alive mariadb mariadbd && alive slurmdbd slurmdbd &&
    alive slurmctld slurmctld && alive slurmd slurmd && scontrol ping 2>/dev/null | grep -q UP &&
    node_ready; then
    say "already running (state in $DIR)"
    print_env
    exit 0
fi

# ---- install ----------------------------------------------------------------------------------
PKGS=(munge mariadb-server mariadb-client slurmctld slurmd slurmdbd slurm-client)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    # keep the packages' init scripts from starting daemons with their default config
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"/tmp/embaug-slurm-apt.log" 2>&1 || {
        ((made_policy)) && rm -f /usr/sbin/policy-rc.d
        tail -n 30 /tmp/embaug-slurm-apt.log >&2
        die "apt-get install failed (log: /tmp/embaug-slurm-apt.log)"
    }
    ((made_policy)) && rm -f /usr/sbin/policy-rc.d
fi

mkdir -p "$DIR"/{etc,log,run,state,spool,munge}
chmod 755 "$DIR" "$DIR"/{etc,log,run,state,spool}

# ---- configuration ----------------------------------------------------------------------------
DB_PASS_FILE=$DIR/etc/.dbpass
[[ -s $DB_PASS_FILE ]] || { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DB_PASS_FILE"; }
chmod 600 "$DB_PASS_FILE"
DB_PASS=$(<"$DB_PASS_FILE")
MUNGE_SOCKET=$DIR/munge/munge.socket

write_conf "$DIR/etc/slurm.conf" <<EOF
# written by tests/cluster/start_slurm.sh
ClusterName=embaug
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmdParameters=config_overrides
# scheduling
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
# limits: memory polled every 2 s and enforced by killing the job; time limits exactly
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
OverTimeLimit=0
KillWait=5
InactiveLimit=0
MinJobAge=300
# accounting
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
# the munge socket for talking to slurmdbd (AuthInfo is not used for that connection)
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageEnforce=associations,limits
AccountingStorageTRES=gres/gpu
# keep sbatch --comment (the Snakemake plugin sets rule_NAME) for sacct -o Comment
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
# the node: more CPUs/memory than this machine has (config_overrides), 4 GPUs without devices
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=16 RealMemory=64000 Gres=gpu:4 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF

# SLURM 22.05 drops a GPU without File= ("Removing file-less GPU ... from final GRES list": the node
# then registers 0 GPUs and is set INVALID), so each GPU is given a stand-in device file: a
# character device 1:3 (the same as /dev/null) made with mknod, or, where mknod is refused, an
# empty regular file (slurmd then logs "is not a valid character or block device" but still counts
# it). Jobs get CUDA_VISIBLE_DEVICES set to their GPU indices as on a real GPU node.
mkdir -p "$DIR/dev"
for i in 0 1 2 3; do
    [[ -c $DIR/dev/gpu$i ]] || { rm -f "$DIR/dev/gpu$i"; mknod -m 600 "$DIR/dev/gpu$i" c 1 3 2>/dev/null ||
        touch "$DIR/dev/gpu$i"; }
done
write_conf "$DIR/etc/gres.conf" <<EOF
# GPUs as a countable resource; the files are stand-ins (there are no GPUs on this machine)
AutoDetect=off
NodeName=$NODE Name=gpu File=$DIR/dev/gpu[0-3]
EOF

write_conf "$DIR/etc/slurmdbd.conf" <<EOF
# written by tests/cluster/start_slurm.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 "$DIR/etc/slurmdbd.conf"
chmod 644 "$DIR/etc/slurm.conf" "$DIR/etc/gres.conf"

if ((LINK_ETC)); then
    mkdir -p /etc/slurm
    if [[ ! -e /etc/slurm/slurm.conf || -L /etc/slurm/slurm.conf ]]; then
        ln -sfn "$DIR/etc/slurm.conf" /etc/slurm/slurm.conf
    else
        say "note: /etc/slurm/slurm.conf exists and is not a link; left alone (export SLURM_CONF)"
    fi
fi

# ---- munged -----------------------------------------------------------------------------------
if ! alive munged munged; then
    install -d -o munge -g munge -m 755 "$DIR/munge"  # clients need x on the socket's folder
    if [[ ! -s $DIR/munge/munge.key ]]; then
        if [[ -s /etc/munge/munge.key ]]; then
            cp /etc/munge/munge.key "$DIR/munge/munge.key"
        else
            dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge "$DIR/munge/munge.key" && chmod 400 "$DIR/munge/munge.key"
    touch "$DIR/log/munged.log" && chown munge:munge "$DIR/log/munged.log"
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
        --log-file="$DIR/log/munged.log" --pid-file="$DIR/munge/munged.pid" \
        --seed-file="$DIR/munge/munged.seed" --force >>"$DIR/log/munged.log" 2>&1 ||
        { tail -n 20 "$DIR/log/munged.log" >&2; die "munged failed to start (log: $DIR/log/munged.log)"; }
fi
wait_for 20 munged "$DIR/log/munged.log" bash -c "munge -S '$MUNGE_SOCKET' -n | unmunge -S '$MUNGE_SOCKET'"

# ---- MariaDB ----------------------------------------------------------------------------------
MYSOCK=$DIR/mysql-run/mysqld.sock
DB() { mariadb --no-defaults -uroot --socket="$MYSOCK" "$@"; }
if ! alive mariadb mariadbd; then
    if [[ ! -d $DIR/mysql/mysql ]]; then
        say "initialising MariaDB in $DIR/mysql"
        rm -rf "$DIR/mysql" && install -d -o mysql -g mysql "$DIR/mysql"
        mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/mysql" \
            --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1 ||
            { tail -n 20 "$DIR/log/mariadb-install.log" >&2; die "mariadb-install-db failed (log: $DIR/log/mariadb-install.log)"; }
    fi
    install -d -o mysql -g mysql -m 755 "$DIR/mysql-run"
    touch "$DIR/log/mariadb.log" && chown mysql:mysql "$DIR/log/mariadb.log"
    say "starting MariaDB on 127.0.0.1:$DB_PORT"
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DIR/mysql" \
        --socket="$MYSOCK" --port="$DB_PORT" --bind-address=127.0.0.1 \
        --pid-file="$DIR/mysql-run/mariadb.pid" --log-error="$DIR/log/mariadb.log" \
        --innodb-use-native-aio=0 --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
        --max-allowed-packet=64M </dev/null >>"$DIR/log/mariadb.log" 2>&1 &
    WATCH_PID=$!
fi
wait_for 60 MariaDB "$DIR/log/mariadb.log" mariadb-admin --no-defaults -uroot --socket="$MYSOCK" ping
wait_for 10 MariaDB "$DIR/log/mariadb.log" test -s "$DIR/mysql-run/mariadb.pid"
WATCH_PID=
DB -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;" || die "could not create the slurm database/user (log: $DIR/log/mariadb.log)"

# ---- slurmdbd ---------------------------------------------------------------------------------
if ! alive slurmdbd slurmdbd; then
    say "starting slurmdbd"
    /usr/sbin/slurmdbd >>"$DIR/log/slurmdbd.log" 2>&1 ||
        { tail -n 20 "$DIR/log/slurmdbd.log" >&2; die "slurmdbd failed to start (log: $DIR/log/slurmdbd.log)"; }
fi
wait_for 60 slurmdbd "$DIR/log/slurmdbd.log" sacctmgr -n show cluster
sacctmgr -n -P show cluster format=cluster | grep -qx embaug || sacctmgr -i add cluster embaug >/dev/null
sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT" ||
    sacctmgr -i add account "$ACCOUNT" cluster=embaug description="embaug workflow" organization=embaug >/dev/null
sacctmgr -n -P show assoc where user=root account="$ACCOUNT" format=user | grep -qx root ||
    sacctmgr -i add user root account="$ACCOUNT" cluster=embaug >/dev/null
sacctmgr -n -P show assoc where user=root account="$ACCOUNT" format=user | grep -qx root ||
    die "could not associate root with account $ACCOUNT (log: $DIR/log/slurmdbd.log)"

# ---- slurmctld, slurmd ------------------------------------------------------------------------
mkdir -p "$DIR/spool/slurmd"
if ! alive slurmctld slurmctld; then
    say "starting slurmctld"
    /usr/sbin/slurmctld >>"$DIR/log/slurmctld.log" 2>&1 ||
        { tail -n 20 "$DIR/log/slurmctld.log" >&2; die "slurmctld failed to start (log: $DIR/log/slurmctld.log)"; }
fi
wait_for 60 slurmctld "$DIR/log/slurmctld.log" bash -c "scontrol ping | grep -q UP"
if ! alive slurmd slurmd; then
    say "starting slurmd"
    /usr/sbin/slurmd >>"$DIR/log/slurmd.log" 2>&1 ||
        { tail -n 20 "$DIR/log/slurmd.log" >&2; die "slurmd failed to start (log: $DIR/log/slurmd.log)"; }
fi
wait_for 60 slurmd "$DIR/log/slurmd.log" alive slurmd slurmd
# a node left down/drained by an earlier run (e.g. killed daemons) is returned to service
end=$((SECONDS + 60))
until node_ready; do
    st=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1 || true)
    if [[ $st == down* || $st == drain* || $st == inval* ]]; then scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true; fi
    if ((SECONDS >= end)); then
        scontrol show node "$NODE" >&2 || true
        tail -n 20 "$DIR/log/slurmd.log" >&2
        die "slurmd: node $NODE not ready after 60s (state '$st'; logs: $DIR/log/slurmd.log, $DIR/log/slurmctld.log)"
    fi
    sleep 0.5
done
print_env
