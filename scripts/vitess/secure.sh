# shellcheck shell=bash
# Part of vitess-local.sh (sourced): an extra vtgate of the reshard cluster that serves gRPC
# with TLS (and, as asked, client certificates and static auth), for the tests of vtmirror's
# secure connections against a real vtgate. The test makes the certificates; this only
# starts and stops the vtgate.

# secure-vtgate <name> <grpc port> <dir>: <dir> holds server.pem and server.key (TLS), and
# optionally ca.pem (client certificates signed by it are required) and users.json (static
# auth: [{"Username": ..., "Password": ...}]). Waits until the port answers.
cmd_secure_vtgate() {
  need_root
  local name=$1 port=$2 dir=$3
  [[ -n "$name" && -n "$port" && -d "$dir" ]] || die "usage: secure-vtgate <name> <grpc port> <dir>"
  daemon_alive rs-vtctld || die "secure-vtgate: the reshard cluster is not up (up-reshard)"
  local inside="/tmp/vtmirror-secure-$name"
  rm -rf "${ROOTFS:?}$inside"
  mkdir -p "$ROOTFS$inside"
  cp "$dir"/server.pem "$dir"/server.key "$ROOTFS$inside/"
  local extra=(--grpc-cert "$inside/server.pem" --grpc-key "$inside/server.key")
  if [[ -f "$dir/ca.pem" ]]; then
    cp "$dir/ca.pem" "$ROOTFS$inside/"
    extra+=(--grpc-ca "$inside/ca.pem")
  fi
  if [[ -f "$dir/users.json" ]]; then
    cp "$dir/users.json" "$ROOTFS$inside/"
    extra+=(--grpc-auth-mode static --grpc-auth-static-password-file "$inside/users.json")
  fi
  chroot "$ROOTFS" chown -R "$RUN_USER:$RUN_USER" "$inside"
  chmod 0700 "$ROOTFS$inside"
  start_daemon "rs-vtgate-$name" "$STATE/logs/vtgate-$name.log" "${ROOT_CMD[@]}" \
    VTDATAROOT="$RS_DATA_IN" \
    vtgate "${RS_TOPO[@]}" --cell "$CELL" --cells-to-watch "$CELL" \
    --tablet-types-to-wait PRIMARY,REPLICA \
    --service-map grpc-vtgateservice \
    --port "$((port + 1))" --grpc-port "$port" \
    --bind-address "$HOST" --grpc-bind-address "$HOST" \
    --mysql-auth-server-impl none \
    --tablet-refresh-interval 2s \
    --log-format text "${extra[@]}"
  wait_until "secure vtgate $name on $port" "$WAIT_TIMEOUT" port_open "$HOST" "$port" ||
    { tail -30 "$STATE/logs/vtgate-$name.log" >&2; die "secure vtgate $name did not start"; }
  echo "SECURE_VTGATE_GRPC=$HOST:$port"
}

# secure-vtgate-stop <name>: stops it and removes its files from the root.
cmd_secure_vtgate_stop() {
  need_root
  local name=$1
  [[ -n "$name" ]] || die "usage: secure-vtgate-stop <name>"
  stop_daemon "rs-vtgate-$name" 30
  rm -rf "${ROOTFS:?}/tmp/vtmirror-secure-$name"
}
