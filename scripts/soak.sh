#!/usr/bin/env bash
# The long variants of the reliability tests (the issue's soak), each tunable by its variable;
# prints a summary at the end. Defaults: 1,000 SIGKILLs (≈ 15 min on 2 cores).
#   VTMIRROR_CRASH_KILLS=1000 VTMIRROR_CRASH_SEED=<n>   tests/crash_kill.rs
#   VTMIRROR_NET_FAULTS, VTMIRROR_FUZZ_CASES            passed through when set (tests that read them)
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

step crash_kill cargo test --release --test crash_kill -- --nocapture
# Further long variants: one line each, run only when their variable is set.
if [ -n "${VTMIRROR_NET_FAULTS:-}" ]; then
  step net_faults cargo test --release --test net_faults -- --nocapture
fi
if [ -n "${VTMIRROR_FUZZ_CASES:-}" ]; then
  step fuzz cargo test --release --lib fuzz -- --nocapture
fi

echo
echo "soak summary (seed $VTMIRROR_CRASH_SEED, $VTMIRROR_CRASH_KILLS kills)"
printf '  %s\n' "${summary[@]}"
grep -h -A6 '^crash test:' "$logs/crash_kill.log" 2>/dev/null | sed 's/^/  /'
exit $failed
