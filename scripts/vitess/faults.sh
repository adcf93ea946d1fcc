#!/usr/bin/env bash
# vitess-local.sh restart-tablets / ers: faults a production keyspace meets, made on the
# reshard cluster's tablets. Sourced by scripts/vitess-local.sh (not run on its own).
# shellcheck disable=SC2317,SC2154

# The uids of the tablets serving <keyspace>, from what start_vttablet remembered.
keyspace_uids() {
  local f uid
  for f in "$STATE"/tablet-*.args; do
    [[ -f "$f" ]] || continue
    uid=${f##*/tablet-}; uid=${uid%.args}
    [[ "$(head -1 "$f")" == "$1" ]] && daemon_alive "rs-vttablet-$uid" && echo "$uid"
  done
}

# The uid of <keyspace>'s primary tablet, from the topology.
primary_uid() {
  local alias
  alias=$(vtctld_cmd GetTablets --keyspace "$1" | awk '$4 == "primary" { print $1; exit }')
  [[ -n "$alias" ]] || return 1
  echo $((10#${alias##*-}))
}

# vtgate routes to a serving primary and a serving replica of <keyspace>.
keyspace_serving() {
  local out
  out=$(mysql_q "$RS_VTGATE_MYSQL" "" "show vitess_tablets") || return 1
  grep -qE "[[:space:]]$1[[:space:]]+[^[:space:]]+[[:space:]]+PRIMARY[[:space:]]+SERVING" <<<"$out" &&
    grep -qE "[[:space:]]$1[[:space:]]+[^[:space:]]+[[:space:]]+REPLICA[[:space:]]+SERVING" <<<"$out"
}

# restart_vttablet <uid> [flags...]: the tablet's vttablet stopped (SIGTERM, as an operator's
# restart does) and started again with the flags given, its mysqld left running.
restart_vttablet() {
  local uid=$1; shift
  local args keyspace shard
  mapfile -t args <"$STATE/tablet-$uid.args"
  keyspace=${args[0]} shard=${args[1]}
  stop_daemon "rs-vttablet-$uid" 30
  start_vttablet "$uid" "$keyspace" "$shard" "$@"
}

# restart-tablets <keyspace> [vttablet flags...]: restart the keyspace's vttablets one at a
# time, replicas first, with these extra flags (none: back to the defaults).
cmd_restart_tablets() {
  need_root
  local keyspace=${1:?restart-tablets: which keyspace}; shift
  local primary uid uids t0; t0=$(now)
  primary=$(primary_uid "$keyspace") || die "restart-tablets: $keyspace has no primary"
  uids=$(keyspace_uids "$keyspace")
  [[ -n "$uids" ]] || die "restart-tablets: no running tablet of $keyspace"
  for uid in $(grep -vx "$primary" <<<"$uids") $primary; do
    restart_vttablet "$uid" "$@"
    wait_until "$keyspace served again after restarting tablet $uid" "$WAIT_TIMEOUT" \
      keyspace_serving "$keyspace" || { tail -30 "$STATE/logs/vttablet-$uid.log" >&2; die "tablet $uid"; }
  done
  timing "restart-tablets $keyspace $*" "$t0"
}

# ers <keyspace>: the primary's vttablet SIGKILLed (a crash), EmergencyReparentShard to the
# replica, then the old primary's vttablet started again: it finds a newer primary in the
# shard record, stays a replica, and ReparentTablet points its replication at the new one.
cmd_ers() {
  need_root
  local keyspace=${1:?ers: which keyspace}
  local old new shard t0; t0=$(now)
  old=$(primary_uid "$keyspace") || die "ers: $keyspace has no primary"
  new=$(keyspace_uids "$keyspace" | grep -vx "$old" | head -1)
  [[ -n "$new" ]] || die "ers: $keyspace has no replica to promote"
  shard=$(sed -n 2p "$STATE/tablet-$old.args")
  local members
  members=$(session_pids "$(cat "$STATE/pids/rs-vttablet-$old.pid")")
  # shellcheck disable=SC2086
  kill -KILL $members 2>/dev/null || true
  vtctld_cmd EmergencyReparentShard "$keyspace/$shard" --new-primary "$(tablet_alias "$new")" \
    --wait-replicas-timeout 3s >&2 || die "EmergencyReparentShard $keyspace/$shard failed"
  timing "EmergencyReparentShard $keyspace/$shard" "$t0"
  local args; mapfile -t args <"$STATE/tablet-$old.args"
  start_vttablet "$old" "${args[@]}"
  wait_until "tablet $old back as a replica" "$WAIT_TIMEOUT" \
    vtctld_cmd ReparentTablet "$(tablet_alias "$old")" ||
    { tail -30 "$STATE/logs/vttablet-$old.log" >&2; die "tablet $old did not rejoin"; }
  wait_until "$keyspace served after the reparent" "$WAIT_TIMEOUT" keyspace_serving "$keyspace" ||
    die "$keyspace not served after EmergencyReparentShard"
  timing "ers $keyspace" "$t0"
}
