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
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --vitess ]; then
  shift
  cargo build --profile profiling --bin vtmirror --example bench_vitess >&2
  # Keyspace onlineddl of the reshard cluster: a real vtgate and vttablets (vttestserver's
  # vtcombo crashed when a client closed a copy stream early; see BENCHMARKS.md).
  set -a; . /tmp/vtmirror-vitess/env; set +a
  exec target/profiling/examples/bench_vitess --grpc "$RESHARD_VTGATE_GRPC" \
    --mysql "$RESHARD_VTGATE_MYSQL" --keyspace "$RESHARD_ONLINE_DDL_KEYSPACE" "$@"
fi
cargo build --profile profiling --example bench >&2
exec target/profiling/examples/bench "$@"
