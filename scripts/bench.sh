#!/usr/bin/env bash
# vtmirror benchmark: L0 (plain SQLite), D0 (receive + decode), T (vtmirror sync end to end)
# and N (naive consumer) on the same data, with ratios. See BENCHMARKS.md.
#
#   scripts/bench.sh --quick                 # 1M copy, 8 shards, replication, lag, < 5 minutes
#   scripts/bench.sh --only long --long-rows 50000000   # the 50M-row copy (opt-in; ~15 GB in /tmp)
#   scripts/bench.sh --only lag --lag-rates 5000,10000,20000,40000   # the lag sweep
#   scripts/bench.sh                         # adds the 5M-row copy and a longer lag run
#   scripts/bench.sh --update-doc BENCHMARKS.md   # also writes the results into the doc
#   scripts/bench.sh --only copy-1M --reps 3      # one workload
#   scripts/bench.sh --vitess [--rows N --reps N] # real Vitess: vtmirror vs a discard client
#                                                 # (needs `scripts/vitess-local.sh up-reshard`)
#   scripts/bench.sh --vitess --cluster vttest    # the same on `scripts/vitess-local.sh up`
#   scripts/bench.sh --vitess --peer debezium --rows 1000000 --reps 3
#                           # adds the Debezium Vitess connector (discard and SQLite sinks);
#                           # builds bench/debezium with Maven, installing Java and Maven if absent
# VTMIRROR_BENCH_PROFILE=release uses the release build instead of the profiling one.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${VTMIRROR_BENCH_PROFILE:-profiling}

build_debezium_harness() {
  if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    apt-get update -qq && apt-get install -y -qq default-jdk-headless maven >&2
  fi
  # Offline first: after the first resolve everything is in ~/.m2 and the build takes seconds.
  (cd bench/debezium && { mvn -q -o package >/dev/null 2>&1 || mvn -q package >&2; })
}

if [ "${1:-}" = --vitess ]; then
  shift
  cluster=reshard
  args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --cluster) cluster=$2; shift 2 ;;
      --peer) [ "$2" = debezium ] && build_debezium_harness; args+=("$1" "$2"); shift 2 ;;
      *) args+=("$1"); shift ;;
    esac
  done
  cargo build --profile "$profile" --bin vtmirror --example bench_vitess >&2
  set -a; . /tmp/vtmirror-vitess/env; set +a
  if [ "$cluster" = vttest ]; then
    # vttestserver (`scripts/vitess-local.sh up`): keyspace commerce, vtgate and tablets in one
    # vtcombo process.
    exec "target/$profile/bench/vitess" --grpc "$VTGATE_GRPC" --mysql "$VTGATE_MYSQL" \
      --keyspace commerce "${args[@]}"
  fi
  # Keyspace onlineddl of the reshard cluster: a real vtgate and vttablets (vttestserver's
  # vtcombo crashed when a client closed a copy stream early; see BENCHMARKS.md).
  exec "target/$profile/bench/vitess" --grpc "$RESHARD_VTGATE_GRPC" \
    --mysql "$RESHARD_VTGATE_MYSQL" --keyspace "$RESHARD_ONLINE_DDL_KEYSPACE" "${args[@]}"
fi
cargo build --profile profiling --example bench >&2
exec target/profiling/examples/bench "$@"
