#!/usr/bin/env bash
# The test command named in README.md: unit tests, integration tests through the real gRPC
# path against the simulated vtgate, and the SIGKILL crash tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --all-targets -- --nocapture 2>&1
