#!/usr/bin/env bash
# vitess-local.sh — real Vitess clusters on this machine for vtmirror's integration tests.
#
# Subcommands (see `usage` below or run with `help`):
#   install        apt packages, a Debian sid root with MySQL 9.x, Vitess binaries (cached)
#   up             vttestserver cluster (keyspaces commerce [1 shard] + things [-80,80-])
#   up-reshard     small real cluster: etcd, vtctld, vtgate, keyspace customer shard 0
#   reshard        customer: 0 -> -80,80- (Reshard create, wait for copy, SwitchTraffic)
#   remove-shard0  Reshard complete, stop shard 0 tablets, DeleteShards customer/0
#   status         what runs, on which ports
#   down [vttest|reshard|all]   stop what this script started; data removed unless KEEP_DATA=1
#
# Everything heavy is cached outside the repository (default /var/cache/vtmirror-vitess):
#   <cache>/<vitess version>/bin   static Vitess binaries built from the Go module
#   <cache>/rootfs-<suite>         debootstrap root holding mysqld / mysql (MySQL 9.x from sid)
# The Vitess and MySQL processes run inside that root (chroot) as the unprivileged user
# "vitess" (mysqld refuses root); loopback is shared, so the host reaches them on 127.0.0.1.
#
# Machine-readable output: `up`, `up-reshard`, `reshard` and `remove-shard0` print KEY=VALUE
# lines on stdout (all progress and TIMING lines go to stderr) and keep them in
# $VTMIRROR_STATE_DIR/env (default /tmp/vtmirror-vitess/env), a shell-sourceable file:
#   VITESS_VERSION, MYSQL_VERSION, VTMIRROR_MYSQL_CLIENT (wrapper: the root's mysql client,
#   needs root), VTMIRROR_VTCTLDCLIENT (wrapper: vtctldclient --server <reshard vtctld>);
#   while `up` runs: VTGATE_GRPC, VTGATE_MYSQL, VTGATE_MYSQL_HOST, VTGATE_MYSQL_PORT,
#   VTGATE_HTTP, VTTEST_MYSQLD_PORT, VTTEST_KEYSPACES, VTTEST_CELL, VTTEST_TABLET_TYPES;
#   while `up-reshard` runs: RESHARD_VTGATE_GRPC, RESHARD_VTGATE_MYSQL, RESHARD_VTGATE_MYSQL_HOST,
#   RESHARD_VTGATE_MYSQL_PORT, RESHARD_VTCTLD_GRPC, RESHARD_ETCD, RESHARD_CELL, RESHARD_KEYSPACE,
#   RESHARD_SHARDS (0 | 0,-80,80- | -80,80-), RESHARD_TABLET_TYPES.
#
# Ports (all on 127.0.0.1):
#   vttestserver, base B=$VTMIRROR_VTTEST_PORT (33570): B http, B+1 vtgate gRPC (VStream),
#     B+2 mysqld, B+3 vtgate MySQL protocol
#   reshard cluster, base R=$VTMIRROR_RESHARD_PORT (33600): R etcd client, R+1 etcd peer,
#     R+2/R+3 vtctld http/gRPC, R+4/R+5/R+6 vtgate http/gRPC/MySQL,
#     tablet uid U (100,101 shard 0; 200,201 -80; 300,301 80-; 400,401 keyspace onlineddl):
#     i=(U/100-1)*2+U%100,
#     http R+20+3i, gRPC R+21+3i, mysqld R+22+3i
# vtgate accepts any MySQL user/password (--mysql-auth-server-impl none).
# shellcheck disable=SC2317  # functions are also called indirectly (wait_until, setsid)
set -euo pipefail

# ---------------------------------------------------------------------------------------
# Configuration (all overridable through the environment)
# ---------------------------------------------------------------------------------------
VITESS_VERSION="${VTMIRROR_VITESS_VERSION:-v0.24.3}"   # Vitess v24.0.3, newest v0.24.x on the proxy
CACHE="${VTMIRROR_VITESS_CACHE:-/var/cache/vtmirror-vitess}"
MYSQL_SUITE="${VTMIRROR_MYSQL_SUITE:-sid}"
DEBIAN_MIRROR="${VTMIRROR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOTFS="${VTMIRROR_ROOTFS:-$CACHE/rootfs-$MYSQL_SUITE}"
STATE="${VTMIRROR_STATE_DIR:-/tmp/vtmirror-vitess}"
# Canonical paths: processes are recognised by their /proc/PID/root being exactly $ROOTFS.
CACHE="$(realpath -m "$CACHE")"; ROOTFS="$(realpath -m "$ROOTFS")"; STATE="$(realpath -m "$STATE")"
HOST=127.0.0.1
VTTEST_PORT="${VTMIRROR_VTTEST_PORT:-33570}"     # http; +1 gRPC vtgate, +2 mysqld, +3 vtgate MySQL
VTTEST_REPLICAS="${VTMIRROR_VTTEST_REPLICA_COUNT:-2}"   # per shard, includes the primary
VTTEST_RDONLY="${VTMIRROR_VTTEST_RDONLY_COUNT:-1}"
RESHARD_PORT="${VTMIRROR_RESHARD_PORT:-33600}"   # see "Ports" in the header
KEEP_DATA="${KEEP_DATA:-0}"
WAIT_TIMEOUT="${VTMIRROR_WAIT_TIMEOUT:-300}"     # seconds, for each wait step

RUN_USER=vitess
VTROOT_IN="/opt/vitess/$VITESS_VERSION"          # inside the root
BIN="$CACHE/$VITESS_VERSION/bin"                 # on the host
VTCTLDCLIENT="$BIN/vtctldclient"
BINARIES=(vttestserver vtcombo mysqlctl vtctldclient vtctld vttablet vtgate)
APT_PACKAGES=(debootstrap etcd-server etcd-client)
ROOT_PACKAGES="mysql-server-core,mysql-client-core,procps"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FIXTURES="$SCRIPT_DIR/vitess"

# The vttestserver cluster.
VTTEST_KEYSPACES="commerce,things"
VTTEST_NUM_SHARDS="1,2"
VTTEST_DATA_IN=/vt/vttest
VTTEST_SCHEMA_IN=/vt/vttest-schema

# The reshard cluster.
CELL=zone1
RS_KEYSPACE=customer
RS_DATA_IN=/vt/reshard
RS_WORKFLOW=cust2cust
RS_ETCD_PORT=$((RESHARD_PORT + 0))
RS_ETCD_PEER_PORT=$((RESHARD_PORT + 1))
RS_VTCTLD_PORT=$((RESHARD_PORT + 2))
RS_VTCTLD_GRPC=$((RESHARD_PORT + 3))
RS_VTGATE_PORT=$((RESHARD_PORT + 4))
RS_VTGATE_GRPC=$((RESHARD_PORT + 5))
RS_VTGATE_MYSQL=$((RESHARD_PORT + 6))
RS_TOPO=(--topo-implementation etcd2 --topo-global-server-address "$HOST:$RS_ETCD_PORT" --topo-global-root /vitess/global)
# Tablet uids per shard: primary candidate first.
declare -A RS_SHARD_UIDS=([0]="100 101" [-80]="200 201" [80-]="300 301")
# A second, unsharded keyspace of the same cluster for Vitess online DDL (vtcombo, behind
# vttestserver, does not run online DDL migrations).
RS_ODL_KEYSPACE=onlineddl
RS_ODL_UIDS="400 401"

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

# ---------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------
install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  else
    log "apt packages present: ${APT_PACKAGES[*]}"
  fi
}

install_rootfs() {
  if [[ -f "$ROOTFS/.vtmirror-ready" && -x "$ROOTFS/usr/sbin/mysqld" ]]; then
    log "MySQL root present: $ROOTFS (mysqld $(mysql_version))"
    return
  fi
  local tmp="$ROOTFS.tmp"
  if mountpoint -q "$tmp/proc" 2>/dev/null; then umount "$tmp/proc"; fi
  rm -rf "$tmp"
  log "debootstrap --variant=minbase $MYSQL_SUITE (+ $ROOT_PACKAGES) into $tmp"
  debootstrap --variant=minbase --include="$ROOT_PACKAGES" "$MYSQL_SUITE" "$tmp" "$DEBIAN_MIRROR" \
    >"$CACHE/debootstrap.log" 2>&1 || { tail -30 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  chroot "$tmp" useradd --create-home --shell /bin/bash "$RUN_USER"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/etc/hosts"
  mkdir -p "$tmp/vt"
  chroot "$tmp" chown "$RUN_USER:$RUN_USER" /vt
  rm -rf "$tmp/var/cache/apt/archives"/*.deb
  touch "$tmp/.vtmirror-ready"
  [[ ! -e "$ROOTFS" ]] || { mountpoint -q "$ROOTFS/proc" && umount "$ROOTFS/proc"; rm -rf "$ROOTFS"; }
  mv "$tmp" "$ROOTFS"
  log "MySQL root ready: mysqld $(mysql_version)"
}

install_vitess() {
  local dest="$CACHE/$VITESS_VERSION" b missing=()
  for b in "${BINARIES[@]}"; do [[ -x "$dest/bin/$b" ]] || missing+=("$b"); done
  if ((${#missing[@]} == 0)); then
    log "Vitess $VITESS_VERSION binaries present: $dest/bin"
  else
    command -v go >/dev/null || die "Go is needed to build Vitess (go.mod of $VITESS_VERSION wants a recent Go)"
    mkdir -p "$dest"
    if [[ ! -f "$dest/src/go.mod" ]]; then
      local t0 info dir; t0=$(now)
      info=$(cd / && GOFLAGS=-mod=mod go mod download -json "vitess.io/vitess@$VITESS_VERSION") ||
        die "go mod download vitess.io/vitess@$VITESS_VERSION failed: $info"
      dir=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
      [[ -d "$dir" ]] || die "no module dir in: $info"
      rm -rf "$dest/src.tmp"
      cp -r "$dir" "$dest/src.tmp"
      chmod -R u+w "$dest/src.tmp"
      mv "$dest/src.tmp" "$dest/src"
      timing "vitess module download+copy" "$t0"
    fi
    local t1 pkgs=(); t1=$(now)
    for b in "${BINARIES[@]}"; do pkgs+=("./go/cmd/$b"); done
    log "building ${BINARIES[*]} (CGO_ENABLED=0, log: $dest/build.log); cold build takes a while"
    rm -rf "$dest/bin.tmp"; mkdir -p "$dest/bin.tmp"
    (cd "$dest/src" && CGO_ENABLED=0 go build -trimpath -o "$dest/bin.tmp/" "${pkgs[@]}") >"$dest/build.log" 2>&1 ||
      { tail -30 "$dest/build.log" >&2; die "Vitess build failed (log: $dest/build.log)"; }
    rm -rf "${dest:?}/bin"; mv "$dest/bin.tmp" "$dest/bin"
    timing "vitess go build" "$t1"
  fi
  # Stage VTROOT inside the root: binaries (hard links) and the init SQL of this version.
  local vr="$ROOTFS$VTROOT_IN"
  mkdir -p "$vr/bin" "$vr/config/mycnf"
  for b in "${BINARIES[@]}"; do
    if ! [[ "$vr/bin/$b" -ef "$dest/bin/$b" ]]; then
      ln -f "$dest/bin/$b" "$vr/bin/$b" 2>/dev/null || cp -f "$dest/bin/$b" "$vr/bin/$b"
    fi
  done
  cp -f "$dest/src/config/init_db.sql" "$vr/config/init_db.sql"
}

cmd_install() {
  need_root
  local t0; t0=$(now)
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.install.lock"
  flock 9
  local t; t=$(now); install_apt; timing "apt" "$t"
  t=$(now); install_rootfs; timing "mysql root" "$t"
  t=$(now); install_vitess; timing "vitess binaries" "$t"
  timing "install total" "$t0"
  echo "VITESS_VERSION=$VITESS_VERSION"
  echo "MYSQL_VERSION=$(mysql_version)"
  echo "VITESS_BIN=$BIN"
  echo "VITESS_ROOTFS=$ROOTFS"
}

check_installed() {
  local b
  [[ -f "$ROOTFS/.vtmirror-ready" ]] || die "MySQL root missing ($ROOTFS): run '$0 install' first"
  for b in "${BINARIES[@]}"; do
    [[ -x "$ROOTFS$VTROOT_IN/bin/$b" ]] || die "Vitess $VITESS_VERSION not installed: run '$0 install' first"
  done
}

# Stage the repository's fixture files into the root (each up takes the current ones).
stage_fixtures() {
  local vr="$ROOTFS$VTROOT_IN"
  cp -f "$FIXTURES/mysql-vttest.cnf" "$vr/config/mycnf/test-suite.cnf"
  cp -f "$FIXTURES/mysql-tablet.cnf" "$vr/config/mycnf/vtmirror-tablet.cnf"
}

# ---------------------------------------------------------------------------------------
# vttestserver cluster
# ---------------------------------------------------------------------------------------
vttest_running() { daemon_alive vttestserver; }

vttest_env() {
  cat <<EOF
VTGATE_GRPC=$HOST:$((VTTEST_PORT + 1))
VTGATE_MYSQL=$HOST:$((VTTEST_PORT + 3))
VTGATE_MYSQL_HOST=$HOST
VTGATE_MYSQL_PORT=$((VTTEST_PORT + 3))
VTGATE_HTTP=$HOST:$VTTEST_PORT
VTTEST_MYSQLD_PORT=$((VTTEST_PORT + 2))
VTTEST_KEYSPACES=$VTTEST_KEYSPACES
VTTEST_CELL=test
VTTEST_TABLET_TYPES=primary,replica$( ((VTTEST_RDONLY > 0)) && echo ",rdonly")
EOF
}

vttest_serving() {
  # vtgate answers, every keyspace/shard has its tablets, and things is readable at replica.
  mysql_q "$((VTTEST_PORT + 3))" "" "select 1" >/dev/null || return 1
  local n want
  n=$(mysql_q "$((VTTEST_PORT + 3))" "" "show vitess_tablets" | grep -c SERVING || true)
  want=$(((VTTEST_REPLICAS + VTTEST_RDONLY) * 3))
  ((n >= want)) || return 1
  mysql_q "$((VTTEST_PORT + 3))" "things@replica" "select count(*) from things" >/dev/null || return 1
  mysql_q "$((VTTEST_PORT + 3))" "commerce@replica" "select count(*) from corder" >/dev/null || return 1
}

# Our fixed ports lie inside Linux's ephemeral range (32768-60999): an outgoing connection can
# take one just before a server binds it ("bind: address already in use"). Reserve them.
reserve_ports() {
  local range="$VTTEST_PORT-$((VTTEST_PORT + 9)),$RESHARD_PORT-$((RESHARD_PORT + 60))"
  local current
  current="$(cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null || true)"
  case ",$current," in *",$range,"*) return 0 ;; esac
  if sysctl -q -w "net.ipv4.ip_local_reserved_ports=${current:+$current,}$range" 2>/dev/null; then
    log "reserved ports $range (no ephemeral use)"
  else
    log "WARNING: could not reserve ports $range; a port clash with an outgoing connection is possible"
  fi
}

cmd_up() {
  reserve_ports
  need_root; check_installed
  mkdir -p "$STATE/logs"
  if vttest_running; then
    log "vttestserver cluster already running"
    vttest_env; return 0
  fi
  local t0; t0=$(now)
  local p
  for p in 0 1 2 3; do
    ! port_open "$HOST" $((VTTEST_PORT + p)) || die "port $((VTTEST_PORT + p)) already in use (set VTMIRROR_VTTEST_PORT)"
  done
  stage_fixtures
  mount_proc
  local data="$ROOTFS$VTTEST_DATA_IN"
  if [[ -d "$data" && "$KEEP_DATA" != 1 ]]; then rm -rf "$data"; fi
  rm -rf "$ROOTFS$VTTEST_SCHEMA_IN"
  cp -r "$FIXTURES/vttest" "$ROOTFS$VTTEST_SCHEMA_IN"
  mkdir -p "$data"
  chroot "$ROOTFS" chown -R "$RUN_USER:$RUN_USER" "$VTTEST_DATA_IN" "$VTTEST_SCHEMA_IN"
  start_daemon vttestserver "$STATE/logs/vttestserver.log" "${ROOT_CMD[@]}" VTDATAROOT="$VTTEST_DATA_IN" \
    vttestserver \
    --port "$VTTEST_PORT" \
    --keyspaces "$VTTEST_KEYSPACES" \
    --num-shards "$VTTEST_NUM_SHARDS" \
    --replica-count "$VTTEST_REPLICAS" \
    --rdonly-count "$VTTEST_RDONLY" \
    --schema-dir "$VTTEST_SCHEMA_IN" \
    --data-dir "$VTTEST_DATA_IN" \
    --persistent-mode \
    --mysql-bind-host "$HOST" \
    --vtcombo-bind-host "$HOST" \
    --grpc-bind-address "$HOST" \
    --tablet-hostname "$HOST" \
    --log-format text
  local pid; pid=$(cat "$STATE/pids/vttestserver.pid")
  local start; start=$(date +%s)
  until vttest_serving 2>/dev/null; do
    if [[ -z "$(session_pids "$pid")" ]]; then
      tail -40 "$STATE/logs/vttestserver.log" >&2
      die "vttestserver exited (log: $STATE/logs/vttestserver.log)"
    fi
    if (($(date +%s) - start > WAIT_TIMEOUT)); then
      tail -40 "$STATE/logs/vttestserver.log" >&2
      die "vttestserver not serving after ${WAIT_TIMEOUT}s (log: $STATE/logs/vttestserver.log)"
    fi
    sleep 1
  done
  port_open "$HOST" $((VTTEST_PORT + 1)) || die "vtgate gRPC port $((VTTEST_PORT + 1)) not answering"
  vttest_env >"$STATE/vttest.env"
  write_env
  timing "up (vttestserver)" "$t0"
  log "memory (RSS of our processes): $(rss_mb_of_sessions) MB"
  vttest_env
}

cmd_down_vttest() {
  if [[ -f "$STATE/pids/vttestserver.pid" ]]; then
    stop_daemon vttestserver 60
  fi
  rm -f "$STATE/vttest.env"
  if [[ "$KEEP_DATA" != 1 ]]; then
    rm -rf "${ROOTFS:?}$VTTEST_DATA_IN" "${ROOTFS:?}$VTTEST_SCHEMA_IN"
  fi
}

# ---------------------------------------------------------------------------------------
# reshard cluster
# ---------------------------------------------------------------------------------------
reshard_running() {
  daemon_alive rs-etcd || daemon_alive rs-vtctld || daemon_alive rs-vtgate && return 0
  local f
  for f in "$STATE"/pids/rs-*.pid; do
    [[ -f "$f" ]] && daemon_alive "$(basename "$f" .pid)" && return 0
  done
  return 1
}

tablet_index() { echo $((($1 / 100 - 1) * 2 + $1 % 100)); }
tablet_http_port() { echo $((RESHARD_PORT + 20 + $(tablet_index "$1") * 3)); }
tablet_grpc_port() { echo $(($(tablet_http_port "$1") + 1)); }
tablet_mysql_port() { echo $(($(tablet_http_port "$1") + 2)); }
tablet_alias() { printf '%s-%010d' "$CELL" "$1"; }

reshard_env() {
  local shards; shards=$(cat "$STATE/reshard.shards" 2>/dev/null || echo 0)
  cat <<EOF
RESHARD_VTGATE_GRPC=$HOST:$RS_VTGATE_GRPC
RESHARD_VTGATE_MYSQL=$HOST:$RS_VTGATE_MYSQL
RESHARD_VTGATE_MYSQL_HOST=$HOST
RESHARD_VTGATE_MYSQL_PORT=$RS_VTGATE_MYSQL
RESHARD_VTCTLD_GRPC=$HOST:$RS_VTCTLD_GRPC
RESHARD_ETCD=$HOST:$RS_ETCD_PORT
RESHARD_CELL=$CELL
RESHARD_KEYSPACE=$RS_KEYSPACE
RESHARD_ONLINE_DDL_KEYSPACE=$RS_ODL_KEYSPACE
RESHARD_SHARDS=$shards
RESHARD_TABLET_TYPES=primary,replica
EOF
}

save_reshard_env() { reshard_env >"$STATE/reshard.env"; write_env; }

# Start mysqld (mysqlctl init) for the given uids in parallel, then their vttablets.
# start_tablets <shard> [keyspace uids]: keyspace defaults to $RS_KEYSPACE and its shard's uids.
start_tablets() {
  local shard=$1 keyspace=${2:-$RS_KEYSPACE} uids=${3:-${RS_SHARD_UIDS[$1]}}
  local uid pids=() rc=0 t0; t0=$(now)
  for uid in $uids; do
    log "mysqlctl init for tablet $(tablet_alias "$uid") (mysql port $(tablet_mysql_port "$uid"))"
    setsid "${ROOT_CMD[@]}" VTDATAROOT="$RS_DATA_IN" EXTRA_MY_CNF="$VTROOT_IN/config/mycnf/vtmirror-tablet.cnf" \
      mysqlctl --tablet-uid "$uid" --mysql-port "$(tablet_mysql_port "$uid")" --log-format text init \
      >"$STATE/logs/mysqlctl-$uid.log" 2>&1 </dev/null &
    echo $! >"$STATE/pids/rs-mysqld-$uid.pid"
    pids+=($!)
  done
  local p
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  if ((rc)); then
    for uid in $uids; do tail -20 "$STATE/logs/mysqlctl-$uid.log" >&2; done
    die "mysqlctl init failed for shard $shard"
  fi
  timing "mysqld init for shard $shard" "$t0"
  for uid in $uids; do
    start_daemon "rs-vttablet-$uid" "$STATE/logs/vttablet-$uid.log" "${ROOT_CMD[@]}" VTDATAROOT="$RS_DATA_IN" \
      vttablet "${RS_TOPO[@]}" \
      --tablet-path "$(tablet_alias "$uid")" \
      --tablet-hostname "$HOST" \
      --init-keyspace "$keyspace" \
      --init-shard "$shard" \
      --init-tablet-type replica \
      --health-check-interval 2s \
      --heartbeat-on-demand-duration 5s \
      --migration-check-interval 2s \
      --backup-storage-implementation file \
      --file-backup-storage-root "$RS_DATA_IN/backups" \
      --port "$(tablet_http_port "$uid")" \
      --grpc-port "$(tablet_grpc_port "$uid")" \
      --bind-address "$HOST" \
      --grpc-bind-address "$HOST" \
      --service-map grpc-queryservice,grpc-tabletmanager,grpc-updatestream \
      --log-format text
  done
  for uid in $uids; do
    wait_until "vttablet $(tablet_alias "$uid") in topo" "$WAIT_TIMEOUT" \
      vtctld_cmd GetTablet "$(tablet_alias "$uid")" ||
      { tail -30 "$STATE/logs/vttablet-$uid.log" >&2; die "vttablet $uid did not register"; }
  done
  # Elect the first uid as primary (works on a shard that never had one).
  local primary; primary=$(tablet_alias "${uids%% *}")
  local t1; t1=$(now)
  wait_until "PlannedReparentShard $keyspace/$shard" "$WAIT_TIMEOUT" \
    vtctld_cmd PlannedReparentShard "$keyspace/$shard" --new-primary "$primary" ||
    { vtctld_cmd PlannedReparentShard "$keyspace/$shard" --new-primary "$primary" >&2 || true; die "PlannedReparentShard failed"; }
  timing "PlannedReparentShard $keyspace/$shard" "$t1"
  wait_until "healthy shard $keyspace/$shard" "$WAIT_TIMEOUT" shard_healthy "$shard" "$keyspace" ||
    die "shard $keyspace/$shard not healthy"
}

# Shard has a primary (in the shard record too) and a replica. (New target shards are not
# primary-serving before SwitchTraffic; serving is checked through vtgate instead.)
shard_healthy() {
  local shard=$1 keyspace=${2:-$RS_KEYSPACE} out
  out=$(vtctld_cmd GetTablets --keyspace "$keyspace" --shard "$shard") || return 1
  grep -q " primary " <<<"$out" || return 1
  grep -q " replica " <<<"$out" || return 1
  vtctld_cmd GetShard "$keyspace/$shard" | grep -q '"primary_alias": {'
}

# Stop the tablets of the given uids: vttablets first, then their mysqld (SIGTERM = clean
# shutdown), all in parallel.
stop_tablets() {
  local uid names=()
  for uid in "$@"; do names+=("rs-vttablet-$uid"); done
  stop_daemons 30 "${names[@]}"
  names=()
  for uid in "$@"; do names+=("rs-mysqld-$uid"); done
  stop_daemons 60 "${names[@]}"
}

cmd_up_reshard() {
  reserve_ports
  need_root; check_installed
  mkdir -p "$STATE/logs" "$STATE/pids"
  if reshard_running; then
    log "reshard cluster already (partly) running; run '$0 down reshard' first for a fresh one"
    reshard_env; return 0
  fi
  local t0; t0=$(now)
  local p
  for p in $RS_ETCD_PORT $RS_ETCD_PEER_PORT $RS_VTCTLD_PORT $RS_VTCTLD_GRPC $RS_VTGATE_PORT $RS_VTGATE_GRPC $RS_VTGATE_MYSQL; do
    ! port_open "$HOST" "$p" || die "port $p already in use (set VTMIRROR_RESHARD_PORT)"
  done
  stage_fixtures
  mount_proc
  local data="$ROOTFS$RS_DATA_IN"
  rm -rf "$data"
  mkdir -p "$data/backups" "$data/etcd"
  chroot "$ROOTFS" chown -R "$RUN_USER:$RUN_USER" "$RS_DATA_IN"
  chown -R root:root "$data/etcd"; chmod 700 "$data/etcd"
  echo 0 >"$STATE/reshard.shards"

  # etcd (Debian's, on the host)
  start_daemon rs-etcd "$STATE/logs/etcd.log" etcd --name vtmirror --data-dir "$data/etcd" \
    --listen-client-urls "http://$HOST:$RS_ETCD_PORT" --advertise-client-urls "http://$HOST:$RS_ETCD_PORT" \
    --listen-peer-urls "http://$HOST:$RS_ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$RS_ETCD_PEER_PORT" \
    --initial-cluster "vtmirror=http://$HOST:$RS_ETCD_PEER_PORT"
  wait_until "etcd" 60 env ETCDCTL_API=3 etcdctl --endpoints "$HOST:$RS_ETCD_PORT" endpoint health ||
    { tail -20 "$STATE/logs/etcd.log" >&2; die "etcd did not start"; }
  "$VTCTLDCLIENT" --server internal "${RS_TOPO[@]}" AddCellInfo \
    --root "/vitess/$CELL" --server-address "$HOST:$RS_ETCD_PORT" "$CELL" >&2

  # vtctld
  start_daemon rs-vtctld "$STATE/logs/vtctld.log" "${ROOT_CMD[@]}" VTDATAROOT="$RS_DATA_IN" \
    vtctld "${RS_TOPO[@]}" --cell "$CELL" \
    --service-map grpc-vtctl,grpc-vtctld \
    --backup-storage-implementation file --file-backup-storage-root "$RS_DATA_IN/backups" \
    --port "$RS_VTCTLD_PORT" --grpc-port "$RS_VTCTLD_GRPC" \
    --bind-address "$HOST" --grpc-bind-address "$HOST" \
    --log-format text
  wait_until "vtctld" 60 vtctld_cmd GetCellInfoNames ||
    { tail -20 "$STATE/logs/vtctld.log" >&2; die "vtctld did not start"; }
  timing "etcd+vtctld" "$t0"

  vtctld_cmd CreateKeyspace --durability-policy=none "$RS_KEYSPACE" >&2
  start_tablets 0
  vtctld_cmd CreateKeyspace --durability-policy=none "$RS_ODL_KEYSPACE" >&2
  start_tablets 0 "$RS_ODL_KEYSPACE" "$RS_ODL_UIDS"
  vtctld_cmd ApplyVSchema --vschema '{"sharded": false}' "$RS_ODL_KEYSPACE" >/dev/null

  local t1; t1=$(now)
  vtctld_cmd ApplySchema --sql-file "$FIXTURES/reshard/customer_schema.sql" "$RS_KEYSPACE" >&2
  vtctld_cmd ApplyVSchema --vschema-file "$FIXTURES/reshard/vschema_unsharded.json" "$RS_KEYSPACE" >/dev/null
  timing "schema+vschema" "$t1"

  # vtgate
  start_daemon rs-vtgate "$STATE/logs/vtgate.log" "${ROOT_CMD[@]}" VTDATAROOT="$RS_DATA_IN" \
    vtgate "${RS_TOPO[@]}" --cell "$CELL" --cells-to-watch "$CELL" \
    --tablet-types-to-wait PRIMARY,REPLICA \
    --service-map grpc-vtgateservice \
    --port "$RS_VTGATE_PORT" --grpc-port "$RS_VTGATE_GRPC" \
    --mysql-server-port "$RS_VTGATE_MYSQL" --mysql-server-bind-address "$HOST" \
    --bind-address "$HOST" --grpc-bind-address "$HOST" \
    --mysql-auth-server-impl none \
    --enable-buffer \
    --tablet-refresh-interval 2s \
    --log-format text
  wait_until "vtgate serving $RS_KEYSPACE (primary+replica)" "$WAIT_TIMEOUT" reshard_serving ||
    { tail -30 "$STATE/logs/vtgate.log" >&2; die "vtgate not serving"; }
  port_open "$HOST" "$RS_VTGATE_GRPC" || die "vtgate gRPC port $RS_VTGATE_GRPC not answering"
  save_reshard_env
  timing "up-reshard" "$t0"
  log "memory (RSS of our processes): $(rss_mb_of_sessions) MB"
  reshard_env
}

reshard_serving() {
  mysql_q "$RS_VTGATE_MYSQL" "$RS_KEYSPACE@primary" "select count(*) from customer" >/dev/null &&
    mysql_q "$RS_VTGATE_MYSQL" "$RS_KEYSPACE@replica" "select count(*) from corder" >/dev/null
}

vtgate_sees_new_tablets() {
  local out n
  out=$(mysql_q "$RS_VTGATE_MYSQL" "" "show vitess_tablets") || return 1
  n=$(grep -cE "${RS_KEYSPACE}[[:space:]]+(-80|80-)[[:space:]]+(PRIMARY|REPLICA)[[:space:]]+SERVING" <<<"$out" || true)
  ((n >= 4))
}

# Every stream of the workflow finished its copy phase and is running (replicating).
workflow_copied() {
  local out n
  out=$(vtctld_cmd Reshard --workflow "$RS_WORKFLOW" --target-keyspace "$RS_KEYSPACE" status 2>/dev/null) || return 1
  n=$(grep -c "Status: Running" <<<"$out" || true)
  ((n >= 2)) || return 1
  ! grep -qE "Status: (Copying|Error|Stopped)" <<<"$out"
}

cmd_reshard() {
  need_root; check_installed
  daemon_alive rs-vtctld || die "reshard cluster not running: '$0 up-reshard' first"
  [[ "$(cat "$STATE/reshard.shards" 2>/dev/null)" == 0 ]] || die "already resharded (shards: $(cat "$STATE/reshard.shards"))"
  local t0; t0=$(now)
  vtctld_cmd ApplyVSchema --vschema-file "$FIXTURES/reshard/vschema_sharded.json" "$RS_KEYSPACE" >/dev/null
  start_tablets -80
  start_tablets 80-
  # vtgate must know the new tablets before the switch, or VStreams crossing the reshard
  # fail with "tablet ... is either down or nonexistent" until its next topo refresh.
  wait_until "vtgate sees the tablets of -80 and 80-" "$WAIT_TIMEOUT" vtgate_sees_new_tablets ||
    die "vtgate does not list the new tablets"
  local t1; t1=$(now)
  vtctld_cmd Reshard --workflow "$RS_WORKFLOW" --target-keyspace "$RS_KEYSPACE" create \
    --source-shards 0 --target-shards '-80,80-' >&2
  wait_until "Reshard copy phase of $RS_WORKFLOW" "$WAIT_TIMEOUT" workflow_copied ||
    { vtctld_cmd Reshard --workflow "$RS_WORKFLOW" --target-keyspace "$RS_KEYSPACE" status >&2 || true; die "reshard copy did not complete"; }
  timing "Reshard create + copy" "$t1"
  t1=$(now)
  # all tablet types (primary, replica, rdonly) in one go
  local i ok=0
  for i in 1 2 3 4 5; do
    if vtctld_cmd Reshard --workflow "$RS_WORKFLOW" --target-keyspace "$RS_KEYSPACE" switchtraffic >&2; then ok=1; break; fi
    log "switchtraffic attempt $i failed; retrying in 5s"
    sleep 5
  done
  ((ok)) || die "SwitchTraffic failed"
  timing "SwitchTraffic" "$t1"
  echo "0,-80,80-" >"$STATE/reshard.shards"
  wait_until "vtgate serving after switch" "$WAIT_TIMEOUT" reshard_serving || die "vtgate not serving after SwitchTraffic"
  save_reshard_env
  timing "reshard" "$t0"
  log "memory (RSS of our processes): $(rss_mb_of_sessions) MB"
  vtctld_cmd FindAllShardsInKeyspace "$RS_KEYSPACE" | grep -o '"name": "[^"]*"' | sed 's/"name": /shard /' >&2 || true
  reshard_env
}

cmd_remove_shard0() {
  need_root; check_installed
  daemon_alive rs-vtctld || die "reshard cluster not running"
  [[ "$(cat "$STATE/reshard.shards" 2>/dev/null)" == "0,-80,80-" ]] || die "run '$0 reshard' first (shards: $(cat "$STATE/reshard.shards" 2>/dev/null))"
  local t0; t0=$(now)
  vtctld_cmd Reshard --workflow "$RS_WORKFLOW" --target-keyspace "$RS_KEYSPACE" complete >&2
  local uid
  # shellcheck disable=SC2086
  stop_tablets ${RS_SHARD_UIDS[0]}
  vtctld_cmd DeleteShards --force --recursive "$RS_KEYSPACE/0" >&2
  echo "-80,80-" >"$STATE/reshard.shards"
  wait_until "vtgate serving without shard 0" "$WAIT_TIMEOUT" reshard_serving || die "vtgate not serving after removing shard 0"
  save_reshard_env
  timing "remove-shard0" "$t0"
  vtctld_cmd FindAllShardsInKeyspace "$RS_KEYSPACE" | grep -o '"name": "[^"]*"' | sed 's/"name": /shard /' >&2 || true
  reshard_env
}

cmd_down_reshard() {
  local f uid uids=()
  stop_daemon rs-vtgate 30
  for f in "$STATE"/pids/rs-vttablet-*.pid "$STATE"/pids/rs-mysqld-*.pid; do
    [[ -f "$f" ]] || continue
    uid=${f##*-}; uid=${uid%.pid}
    [[ " ${uids[*]} " == *" $uid "* ]] || uids+=("$uid")
  done
  ((${#uids[@]} == 0)) || stop_tablets "${uids[@]}"
  stop_daemons 30 rs-vtctld rs-etcd
  rm -f "$STATE/reshard.env" "$STATE/reshard.shards"
  if [[ "$KEEP_DATA" != 1 ]]; then rm -rf "${ROOTFS:?}$RS_DATA_IN"; fi
}

cmd_down() {
  need_root
  local which=${1:-all}
  mkdir -p "$STATE"
  case "$which" in
    vttest) cmd_down_vttest ;;
    reshard) cmd_down_reshard ;;
    all) cmd_down_vttest; cmd_down_reshard ;;
    *) die "down: unknown cluster '$which' (vttest|reshard|all)" ;;
  esac
  umount_proc_if_idle
  if [[ -f "$ROOTFS/.vtmirror-ready" ]]; then write_env; fi
  log "down ($which) done (KEEP_DATA=$KEEP_DATA)"
}

# ---------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------
cmd_status() {
  echo "vitess $VITESS_VERSION: $([[ -x "$BIN/vttestserver" ]] && echo "built in $BIN" || echo "not built")"
  echo "mysql root: $([[ -f "$ROOTFS/.vtmirror-ready" ]] && echo "$ROOTFS (mysqld $(mysql_version))" || echo "not installed")"
  echo "state dir: $STATE"
  local f name pid any=0
  for f in "$STATE"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    any=1
    name=$(basename "$f" .pid); pid=$(cat "$f")
    if [[ -n "$(session_pids "$pid")" ]]; then
      echo "  $name: running (session $pid: $(session_pids "$pid" | tr '\n' ' '))"
    else
      echo "  $name: NOT running (stale pid $pid)"
    fi
  done
  ((any)) || echo "  nothing started"
  if vttest_running; then
    echo "vttestserver cluster: vtgate gRPC $HOST:$((VTTEST_PORT + 1)), MySQL $HOST:$((VTTEST_PORT + 3)), http $HOST:$VTTEST_PORT, mysqld $HOST:$((VTTEST_PORT + 2))"
  fi
  if daemon_alive rs-vtctld; then
    echo "reshard cluster: vtgate gRPC $HOST:$RS_VTGATE_GRPC, MySQL $HOST:$RS_VTGATE_MYSQL, vtctld gRPC $HOST:$RS_VTCTLD_GRPC, etcd $HOST:$RS_ETCD_PORT"
    vtctld_cmd GetTablets --keyspace "$RS_KEYSPACE" 2>/dev/null | sed 's/^/  /' || true
  fi
  echo "memory (RSS of our processes): $(rss_mb_of_sessions) MB"
  [[ -f "$STATE/env" ]] && { echo "--- $STATE/env"; cat "$STATE/env"; }
  return 0
}

main() {
  local cmd=${1:-help}
  shift || true
  case "$cmd" in
    install) cmd_install ;;
    up) cmd_up ;;
    up-reshard) cmd_up_reshard ;;
    reshard) cmd_reshard ;;
    remove-shard0) cmd_remove_shard0 ;;
    status) cmd_status ;;
    down) cmd_down "$@" ;;
    env) cat "$STATE/env" ;;
    help | -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"; exit $?
