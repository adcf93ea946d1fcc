#!/usr/bin/env bash
# vitess-local.sh — real Vitess clusters on this machine for vtmirror's integration tests.
#
# Subcommands (see `usage` below or run with `help`):
#   install        apt packages, a Debian sid root with MySQL 9.x, Vitess binaries (cached)
#   up             vttestserver cluster (keyspaces commerce [1 shard] + things [-80,80-]);
#                  VTMIRROR_BINLOG_ROW_IMAGE=NOBLOB (or MINIMAL) starts its mysqld with that
#                  binlog_row_image (an extra my.cnf, vttestserver --extra-my-cnf). Without it,
#                  tests get NOBLOB images from one session: `SET SESSION binlog_row_image =
#                  'NOBLOB'` as vt_dba on VTTEST_MYSQLD_SOCKET (vtgate refuses the setting).
#                  On a running cluster, `up` only refreshes the env file.
#   up-reshard     small real cluster: etcd, vtctld, vtgate, keyspace customer shard 0
#   reshard        customer: 0 -> -80,80- (Reshard create, wait for copy, SwitchTraffic)
#   remove-shard0  Reshard complete, stop shard 0 tablets, DeleteShards customer/0
#   status         what runs, on which ports
#   down [vttest|reshard|all]   stop what this script started; data removed unless KEEP_DATA=1
#   secure-vtgate NAME PORT DIR  an extra vtgate of the reshard cluster with TLS (DIR: server.pem,
#                  server.key; ca.pem → client certificates required; users.json → static auth)
#   secure-vtgate-stop NAME
#   restart-vtgate [SECS]  SIGKILL the reshard cluster's vtgate, wait SECS (2), start it again
#   restart-tablets KS [FLAGS]  restart keyspace KS's vttablets (replicas first) with FLAGS
#   ers KS                 SIGKILL KS's primary vttablet, EmergencyReparentShard to the replica,
#                          the old primary back as a replica
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
#   VTGATE_HTTP, VTTEST_MYSQLD_PORT, VTTEST_MYSQLD_SOCKET (the mysqld's socket seen from the
#   host; user vt_dba, no password), VTTEST_BINLOG_ROW_IMAGE, VTTEST_KEYSPACES, VTTEST_CELL,
#   VTTEST_TABLET_TYPES;
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
VTTEST_ROW_IMAGE="${VTMIRROR_BINLOG_ROW_IMAGE:-FULL}"   # the mysqld's binlog_row_image (up)
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


# The parts, one file each: helpers, install, and one per cluster kind.
PARTS="$SCRIPT_DIR/vitess"
# shellcheck source=vitess/lib.sh
source "$PARTS/lib.sh"
# shellcheck source=vitess/install.sh
source "$PARTS/install.sh"
# shellcheck source=vitess/vttest.sh
source "$PARTS/vttest.sh"
# shellcheck source=vitess/reshard.sh
source "$PARTS/reshard.sh"
# shellcheck source=vitess/faults.sh
source "$PARTS/faults.sh"
# shellcheck source=vitess/secure.sh
source "$PARTS/secure.sh"

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
    secure-vtgate) cmd_secure_vtgate "$@" ;;
    restart-vtgate) cmd_restart_vtgate "$@" ;;
    restart-tablets) cmd_restart_tablets "$@" ;;
    ers) cmd_ers "$@" ;;
    secure-vtgate-stop) cmd_secure_vtgate_stop "$@" ;;
    env) cat "$STATE/env" ;;
    help | -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"; exit $?
