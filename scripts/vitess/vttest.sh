#!/usr/bin/env bash
# vitess-local.sh up / down vttest: the vttestserver cluster (commerce + things).
# Sourced by scripts/vitess-local.sh (not run on its own): its settings and helpers are in scope.
# shellcheck disable=SC2317,SC2154

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
VTTEST_MYSQLD_SOCKET=$ROOTFS$VTTEST_DATA_IN/vt_0000000001/mysql.sock
VTTEST_BINLOG_ROW_IMAGE=$(vttest_row_image)
VTTEST_KEYSPACES=$VTTEST_KEYSPACES
VTTEST_CELL=test
VTTEST_TABLET_TYPES=primary,replica$( ((VTTEST_RDONLY > 0)) && echo ",rdonly")
EOF
}

# The running mysqld's global binlog_row_image (as `up` started it; the opt-in below), or the
# one the next `up` would give it.
vttest_row_image() {
  local image
  image=$(mysql_socket_q "select @@global.binlog_row_image" 2>/dev/null || true)
  echo "${image:-$VTTEST_ROW_IMAGE}"
}

# A statement as vt_dba on the vttestserver mysqld's socket (inside the root).
mysql_socket_q() {
  chroot "$ROOTFS" /usr/bin/mysql --no-defaults -S "$VTTEST_DATA_IN/vt_0000000001/mysql.sock" \
    -u vt_dba -N -B -e "$1"
}

# `VTMIRROR_BINLOG_ROW_IMAGE=NOBLOB up`: the mysqld logs partial row images (MINIMAL too, for
# tests of what vtmirror refuses); vttestserver adds the file to its my.cnf (--extra-my-cnf).
# Prints the vttestserver flag, nothing for FULL.
vttest_row_image_flag() {
  case "$VTTEST_ROW_IMAGE" in
    FULL) return 0 ;;
    NOBLOB | MINIMAL) ;;
    *) die "VTMIRROR_BINLOG_ROW_IMAGE must be FULL, NOBLOB or MINIMAL, not $VTTEST_ROW_IMAGE" ;;
  esac
  local cnf="$VTTEST_SCHEMA_IN.row-image.cnf"
  printf '[mysqld]\nbinlog_row_image = %s\n' "$VTTEST_ROW_IMAGE" >"$ROOTFS$cnf"
  chroot "$ROOTFS" chown "$RUN_USER:$RUN_USER" "$cnf"
  echo "--extra-my-cnf=$cnf"
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
    log "vttestserver cluster already running (env file refreshed)"
    vttest_env >"$STATE/vttest.env"
    write_env
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
  local row_image; row_image=$(vttest_row_image_flag)
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
    --log-format text ${row_image:+"$row_image"}
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

