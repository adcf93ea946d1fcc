#!/usr/bin/env bash
# The test command named in README.md. Runs every test: unit tests, integration tests through
# the real gRPC path against the simulated vtgate, the SIGKILL crash tests, and the end-to-end
# tests against real Vitess, whose clusters it installs (cached) and starts first, and the
# metrics test against a real Prometheus (installed from Debian's package when missing).
# VTMIRROR_SKIP_E2E=1 skips the real-Vitess part (the e2e tests then print "skipped") and the
# install (the Prometheus test is then skipped when prometheus is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${VTMIRROR_SKIP_E2E:-0}" != 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "the real-Vitess tests need root (chroot, apt); set VTMIRROR_SKIP_E2E=1 to skip them" >&2
    exit 1
  fi
  bash scripts/vitess-local.sh install
  # A real Prometheus for tests/sim/metrics.rs (Debian's package; only the binaries are used:
  # the test runs its own server on a free port, the Debian service is not started).
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    policy=/usr/sbin/policy-rc.d   # "101: action forbidden": the package starts no service
    [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; added_policy=1; }
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
    [ -z "${added_policy:-}" ] || rm -f "$policy"
  fi
  trap 'bash scripts/vitess-local.sh down all >/dev/null 2>&1 || true' EXIT
  bash scripts/vitess-local.sh down all >/dev/null 2>&1 || true
  bash scripts/vitess-local.sh up
  bash scripts/vitess-local.sh up-reshard
  export VTMIRROR_E2E=1
fi
# Every line of test output is kept, then searched for the canary password the security tests
# use: it must appear nowhere (not in logs, output or assertion messages).
log=target/test-output.log
mkdir -p target
# tests/sim/embed.rs runs examples/embed as a process: `cargo test` builds examples only as
# test harnesses, so the example binary is built first.
cargo build --release --example embed
cargo test --release --all-targets -- --nocapture 2>&1 | tee "$log"
canary='canary-7f3e-not-a-real-password'
hits=$(grep -c -- "$canary" "$log" || true)
echo "canary password in test output: $hits hits"
[ "$hits" = 0 ]
