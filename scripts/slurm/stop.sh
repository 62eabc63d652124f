#!/usr/bin/env bash
# Stop the daemons that scripts/slurm/start.sh started (recorded under /run/metagen-local-slurm),
# in reverse start order: SIGTERM, up to 30 s, then SIGKILL. Daemons it did not start are left alone.
#   --all    also stop the cluster's daemons that were running before start.sh (by their PID files)
#   --wipe   also drop the accounting DB and delete Slurm job state, spool and logs (next start is clean)
set -uo pipefail
ALL=0; WIPE=0
for a in "$@"; do case $a in --all) ALL=1 ;; --wipe) WIPE=1 ;;
  *) echo "usage: $0 [--all] [--wipe]" >&2; exit 2 ;; esac; done
[ "$(id -u)" = 0 ] || { echo "slurm/stop.sh: ERROR: must run as root" >&2; exit 1; }
STATE_DIR=/run/metagen-local-slurm
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*zombie' "/proc/$1/status" 2>/dev/null; }
stop() {  # pidfile name
  local rec="$STATE_DIR/$2.pid" p
  if [ -f "$rec" ]; then p=$(cat "$rec"); elif [ $ALL = 1 ]; then p=$(cat "$1" 2>/dev/null) || return 0; else return 0; fi
  rm -f "$rec"
  if [ "$(cat "/proc/$p/comm" 2>/dev/null)" != "$2" ] || ! alive "$p"; then return 0; fi  # already gone
  kill "$p"; for _ in $(seq 60); do alive "$p" || break; sleep 0.5; done
  if alive "$p"; then echo "slurm/stop.sh: $2 ($p) ignored SIGTERM, sending SIGKILL"; kill -9 "$p"; fi
  [ "$(cat "$1" 2>/dev/null)" = "$p" ] && rm -f "$1"
  echo "slurm/stop.sh: stopped $2 ($p)"
}
stop /run/slurmd.pid slurmd
stop /run/slurmctld.pid slurmctld
stop /run/slurmdbd.pid slurmdbd
[ $WIPE = 1 ] && mariadb-admin ping >/dev/null 2>&1 && mariadb -e 'DROP DATABASE IF EXISTS slurm_acct_db'
stop /run/mysqld/mysqld.pid mariadbd
stop /run/munge/munged.pid munged
if [ $WIPE = 1 ]; then
  rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/* /var/log/slurm/*
  echo "slurm/stop.sh: wiped Slurm state, spool, logs and accounting DB"
fi
exit 0
