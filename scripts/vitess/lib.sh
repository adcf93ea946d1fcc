#!/usr/bin/env bash
# Helpers of scripts/vitess-local.sh: logging, waiting, the sid root, daemons, the env file.
# Sourced by scripts/vitess-local.sh (not run on its own): its settings and helpers are in scope.
# shellcheck disable=SC2317,SC2154

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
log() { printf '[vitess-local %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
timing() { log "TIMING $1: $(since "$2")s"; }

usage() {
  cat <<EOF
usage: $0 <subcommand>

  install          install/build everything (idempotent, cached in $CACHE)
  up               start the vttestserver cluster (default cluster)
  up-reshard       start the reshard cluster (keyspace $RS_KEYSPACE, shard 0)
  reshard          reshard $RS_KEYSPACE 0 -> -80,80- and switch all traffic (keeps shard 0)
  remove-shard0    complete the workflow, stop shard 0 tablets, delete shard 0
  status           show what runs
  down [vttest|reshard|all]  stop (default all); data removed unless KEEP_DATA=1
  env              print the state file ($STATE/env)

env: VTMIRROR_VITESS_VERSION=$VITESS_VERSION VTMIRROR_VITESS_CACHE=$CACHE
     VTMIRROR_STATE_DIR=$STATE VTMIRROR_VTTEST_PORT=$VTTEST_PORT
     VTMIRROR_RESHARD_PORT=$RESHARD_PORT VTMIRROR_DEBIAN_MIRROR=$DEBIAN_MIRROR
     VTMIRROR_VTTEST_REPLICA_COUNT=$VTTEST_REPLICAS VTMIRROR_VTTEST_RDONLY_COUNT=$VTTEST_RDONLY
     VTMIRROR_WAIT_TIMEOUT=$WAIT_TIMEOUT KEEP_DATA=$KEEP_DATA
EOF
}

need_root() { [[ $EUID -eq 0 ]] || die "must run as root (apt, debootstrap, chroot)"; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_until <description> <timeout seconds> <command...>
wait_until() {
  local desc=$1 timeout=$2; shift 2
  local start; start=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) - start >= timeout)); then
      log "timed out after ${timeout}s waiting for: $desc"
      return 1
    fi
    sleep 1
  done
}

# Command prefix that runs a program inside the root as the unprivileged user, with the
# Vitess environment; extra environment variables can follow as NAME=VALUE words.
# (An array, not a function, so that setsid can exec it.)
root_cmd() {
  ROOT_CMD=(chroot --userspec="$RUN_USER:$RUN_USER" "$ROOTFS" /usr/bin/env -i
    HOME="/home/$RUN_USER" USER="$RUN_USER" LANG=C.UTF-8
    PATH="$VTROOT_IN/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    VTROOT="$VTROOT_IN" VT_MYSQL_ROOT=/usr)
}
root_cmd
in_root() { "${ROOT_CMD[@]}" "$@"; }

# mysql client from the root against a TCP port: mysql_q <port> <database or ""> <sql>
mysql_q() {
  local port=$1 db=$2 sql=$3
  chroot "$ROOTFS" /usr/bin/mysql --no-defaults -h "$HOST" -P "$port" -u vtmirror \
    --connect-timeout=5 -N -B ${db:+-D "$db"} -e "$sql"
}

vtctld_cmd() { "$VTCTLDCLIENT" --server "$HOST:$RS_VTCTLD_GRPC" "$@"; }

# Start a long-running process in its own session; remember its pid (= session id).
# start_daemon <name> <log file> <command...>
start_daemon() {
  local name=$1 logf=$2; shift 2
  mkdir -p "$STATE/pids" "$(dirname "$logf")"
  setsid "$@" >"$logf" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$STATE/pids/$name.pid"
  log "started $name (pid $pid, log $logf)"
}

# Pids of every live process in session <sid> that belongs to us (runs in our root, or is
# the etcd we started from the host).
session_pids() {
  local sid=$1 st line rest pid
  for st in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$st" || continue
    rest=${line##*) }
    # fields after "comm)": state ppid pgrp session ...
    read -r _ _ _ s _ <<<"$rest" || true
    [[ "$s" == "$sid" ]] || continue
    pid=${st#/proc/}; pid=${pid%/stat}
    if [[ "$(readlink "/proc/$pid/root" 2>/dev/null)" == "$ROOTFS" ]] ||
       [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == /usr/bin/etcd ]]; then
      echo "$pid"
    fi
  done
}

daemon_alive() {
  local f="$STATE/pids/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid=$(cat "$f")
  [[ -n "$(session_pids "$pid")" ]]
}

# stop_daemon <name> [grace seconds]: SIGTERM the session leader (or, once the leader is
# gone, e.g. mysqlctl after starting mysqld, every process of the session), wait, then
# SIGKILL what is left of the session.
stop_daemon() {
  local name=$1 grace=${2:-30} f="$STATE/pids/$1.pid" pid i members
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  members=$(session_pids "$pid")
  if [[ -n "$members" ]]; then
    log "stopping $name (session $pid)"
    if grep -qx "$pid" <<<"$members"; then
      kill -TERM "$pid" 2>/dev/null || true
    else
      # shellcheck disable=SC2086
      kill -TERM $members 2>/dev/null || true
    fi
    for ((i = 0; i < grace * 5; i++)); do
      [[ -z "$(session_pids "$pid")" ]] && break
      sleep 0.2
    done
    members=$(session_pids "$pid")
    if [[ -n "$members" ]]; then
      log "killing leftover processes of $name: ${members//$'\n'/ }"
      # shellcheck disable=SC2086
      kill -KILL $members 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$f"
}

# stop_daemons <grace> <name...>: stop_daemon for all of them in parallel.
stop_daemons() {
  local grace=$1 n; shift
  for n in "$@"; do stop_daemon "$n" "$grace" & done
  wait
}

mount_proc() {
  if ! mountpoint -q "$ROOTFS/proc"; then
    if mount -t proc proc "$ROOTFS/proc" 2>/dev/null; then
      touch "$STATE/proc-mounted"
    else
      log "warning: could not mount /proc in the root (continuing without)"
    fi
  fi
}

umount_proc_if_idle() {
  if [[ -f "$STATE/proc-mounted" ]] && ! vttest_running && ! reshard_running; then
    umount "$ROOTFS/proc" 2>/dev/null || true
    rm -f "$STATE/proc-mounted"
  fi
}

rss_mb_of_sessions() {
  local total=0 f pid p kb
  for f in "$STATE"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    for p in $(session_pids "$(cat "$f")"); do
      kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
      total=$((total + ${kb:-0}))
    done
  done
  echo $((total / 1024))
}

mysql_version() { chroot "$ROOTFS" /usr/sbin/mysqld --version 2>/dev/null | awk '{ print $3 }'; }

write_env() {
  mkdir -p "$STATE/bin"
  # Wrappers so tests (running as root) can use the root's clients without knowing paths.
  cat >"$STATE/bin/mysql" <<EOF
#!/bin/sh
# MySQL $(mysql_version) client from the vtmirror Vitess root. vtgate accepts any user/password.
exec chroot "$ROOTFS" /usr/bin/mysql --no-defaults "\$@"
EOF
  cat >"$STATE/bin/vtctldclient" <<EOF
#!/bin/sh
# vtctldclient ($VITESS_VERSION) pointed at the reshard cluster's vtctld.
exec "$VTCTLDCLIENT" --server "$HOST:$RS_VTCTLD_GRPC" "\$@"
EOF
  chmod +x "$STATE/bin/mysql" "$STATE/bin/vtctldclient"
  {
    echo "# vtmirror local Vitess clusters; written by scripts/vitess-local.sh; shell-sourceable KEY=VALUE"
    echo "VITESS_VERSION=$VITESS_VERSION"
    echo "MYSQL_VERSION=$(mysql_version)"
    echo "VTMIRROR_MYSQL_CLIENT=$STATE/bin/mysql"
    echo "VTMIRROR_VTCTLDCLIENT=$STATE/bin/vtctldclient"
    [[ -f "$STATE/vttest.env" ]] && cat "$STATE/vttest.env"
    [[ -f "$STATE/reshard.env" ]] && cat "$STATE/reshard.env"
  } >"$STATE/env.tmp"
  mv "$STATE/env.tmp" "$STATE/env"
}

