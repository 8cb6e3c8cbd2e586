#!/usr/bin/env bash
# The whole test suite, from a fresh machine: fetch and verify the test models, then build and
# run every test (unit, hostile-file, tokenizer/template/logit fixtures, engine and CLI) with
# optimised code, since several tests run the real models. Ends with one "N passed, N failed"
# line summing all test binaries.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-models.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
