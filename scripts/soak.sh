#!/usr/bin/env bash
# The long variants of the reliability tests (the issue's soak), each tunable by its variable;
# prints a summary at the end. Defaults: 1,000 SIGKILLs (≈ 15 min on 2 cores).
#   VTMIRROR_CRASH_KILLS=1000 VTMIRROR_CRASH_SEED=<n>   tests/faults/crash_kill.rs
#   VTMIRROR_NET_FAULTS=40 VTMIRROR_NET_BLACK_HOLES=3    tests/faults/network.rs (when set)
#   VTMIRROR_FUZZ_SECONDS=600 or VTMIRROR_FUZZ_CASES=<n> tests/faults/fuzz.rs (when set)
#   VTMIRROR_E2E_KILLS=200   the real-Vitess kill test, tests/e2e/vttest.rs (when set; needs
#                            `scripts/vitess-local.sh up` first)
#   VTMIRROR_E2E_RESHARD_KILLS=60  SIGKILLs of a mirror of every keyspace across a reshard,
#                            tests/e2e/reshard.rs (when set; starts a fresh reshard cluster,
#                            which the test leaves resharded)
# Logs go to target/soak/<step>.log. Exit status: non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export VTMIRROR_CRASH_KILLS="${VTMIRROR_CRASH_KILLS:-1000}"
export VTMIRROR_CRASH_SEED="${VTMIRROR_CRASH_SEED:-$(date +%s)}"
logs=target/soak
mkdir -p "$logs"
cargo build --release --tests >/dev/null 2>&1 || { echo "soak: build failed" >&2; exit 1; }

summary=()
failed=0
# step <name> <command...>: runs one long test, keeps its log, records the outcome and time.
step() {
  local name=$1; shift
  local start=$SECONDS
  echo "soak: $name …"
  if "$@" >"$logs/$name.log" 2>&1; then
    summary+=("ok     $name ($((SECONDS - start)) s)")
  else
    summary+=("FAILED $name ($((SECONDS - start)) s), see $logs/$name.log")
    failed=1
  fi
}

step crash_kill cargo test --release --test faults crash_kill -- --nocapture
# Further long variants: `when VARIABLE <module>` runs the fault suite's tests of that module
# when the variable is set (the variables reach the tests through the environment). Add one
# line per tunable test module.
when() {
  local variable=$1 module=$2; shift 2
  if [ -n "${!variable:-}" ] && [ -f "tests/faults/$module.rs" ]; then
    step "$module" cargo test --release --test faults "$module::" "$@" -- --nocapture
  fi
}
when VTMIRROR_NET_FAULTS network
when VTMIRROR_FUZZ_SECONDS fuzz
when VTMIRROR_FUZZ_CASES fuzz
if [ -n "${VTMIRROR_E2E_KILLS:-}" ]; then
  step e2e_kill env VTMIRROR_E2E=1 cargo test --release --test e2e vttest::sigkill -- --nocapture
fi
if [ -n "${VTMIRROR_E2E_RESHARD_KILLS:-}" ]; then
  fresh_reshard_cluster() {
    bash scripts/vitess-local.sh down reshard && bash scripts/vitess-local.sh up-reshard
  }
  step reshard_cluster fresh_reshard_cluster
  step e2e_reshard_kill env VTMIRROR_E2E=1 cargo test --release --test e2e reshard::seed_000 -- --nocapture
fi

echo
echo "soak summary (seed $VTMIRROR_CRASH_SEED, $VTMIRROR_CRASH_KILLS kills)"
printf '  %s\n' "${summary[@]}"
grep -h -A6 '^crash test:' "$logs/crash_kill.log" 2>/dev/null | sed 's/^/  /'
grep -h '^real Vitess kill test:' "$logs/e2e_kill.log" 2>/dev/null | sed 's/^/  /'
grep -h '^reshard kill test:' "$logs/e2e_reshard_kill.log" 2>/dev/null | sed 's/^/  /'
exit $failed
