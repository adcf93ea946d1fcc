#!/usr/bin/env bash
# vitess-local.sh install: apt packages, the Debian sid root with MySQL 9.x, Vitess binaries (cached).
# Sourced by scripts/vitess-local.sh (not run on its own): its settings and helpers are in scope.
# shellcheck disable=SC2317,SC2154

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

