#!/usr/bin/env bash
# vitess-local.sh up-reshard / reshard / remove-shard0 / down reshard: the real-tablet cluster.
# Sourced by scripts/vitess-local.sh (not run on its own): its settings and helpers are in scope.
# shellcheck disable=SC2317,SC2154

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
RESHARD_VTGATE_LOG=$STATE/logs/vtgate.log
EOF
}

save_reshard_env() { reshard_env >"$STATE/reshard.env"; write_env; }

# start_vttablet <uid> <keyspace> <shard> [extra vttablet flags...]: the tablet's vttablet
# (its mysqld already running). Remembers keyspace, shard and flags for a later restart.
start_vttablet() {
  local uid=$1 keyspace=$2 shard=$3; shift 3
  printf '%s\n' "$keyspace" "$shard" "$@" >"$STATE/tablet-$uid.args"
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
    --log-format text "$@"
}

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
  for uid in $uids; do start_vttablet "$uid" "$keyspace" "$shard"; done
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

  start_rs_vtgate
  save_reshard_env
  timing "up-reshard" "$t0"
  log "memory (RSS of our processes): $(rss_mb_of_sessions) MB"
  reshard_env
}

# The reshard cluster's vtgate; waits until it serves.
start_rs_vtgate() {
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
}

# restart-vtgate [seconds down]: SIGKILL the reshard cluster's vtgate (a crash, not a
# drain), keep it down a while, start it again.
cmd_restart_vtgate() {
  need_root
  daemon_alive rs-vtgate || die "restart-vtgate: the reshard cluster's vtgate is not running"
  local f="$STATE/pids/rs-vtgate.pid" members
  members=$(session_pids "$(cat "$f")")
  # shellcheck disable=SC2086
  kill -KILL $members 2>/dev/null || true
  sleep "${1:-2}"
  start_rs_vtgate
  log "vtgate restarted"
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
  for f in "$STATE"/pids/rs-vtgate-*.pid; do
    if [[ -f "$f" ]]; then stop_daemon "$(basename "$f" .pid)" 30; fi
  done
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

