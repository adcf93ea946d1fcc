#!/usr/bin/env bash
# vtmirror benchmark: L0 (plain SQLite), D0 (receive + decode), T (vtmirror sync end to end)
# and N (naive consumer) on the same data, with ratios. See BENCHMARKS.md.
#
#   scripts/bench.sh --quick                 # 1M copy + replication + lag, < 5 minutes
#   scripts/bench.sh                         # adds the 5M-row copy and a longer lag run
#   scripts/bench.sh --update-doc BENCHMARKS.md   # also writes the results into the doc
#   scripts/bench.sh --only copy-1M --reps 3      # one workload
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example bench >&2
exec target/release/examples/bench "$@"
