#!/usr/bin/env bash
# The whole test suite, from a fresh machine: fetch and verify the test models, then build and
# run every Rust test (unit, hostile-file, tokenizer/template/logit fixtures, engine, server and
# CLI) with optimised code, since several tests run the real models; then the API tests, which
# drive the real `ward serve` with the official `openai` Python package, LangChain, the `ollama`
# client, raw HTTP and a headless chromium (their packages go into .venv-test). Ends with one
# "N passed, N failed, N skipped" line summing everything (skipped: what this machine cannot run,
# each named above it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-models.sh

# The chat page's test drives a real headless browser: Debian's chromium.
if ! command -v chromium >/dev/null; then
  sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

api_tests=crates/server/tests/api
venv="$root/.venv-test"
if ! cmp -s "$api_tests/requirements.txt" "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$api_tests/requirements.txt"
  cp "$api_tests/requirements.txt" "$venv/requirements.txt"
fi

log=$(mktemp)
# Tests that cannot run here (a SIMD tier this CPU lacks…) record themselves in this file
# (crates/testkit): counted as skipped below, never as passed.
export WARD_SKIPPED=$(mktemp)
trap 'rm -f "$log" "$WARD_SKIPPED"' EXIT
set +e
cargo test --release --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Arguments that select no test at all are a mistake, not a pass.
if ! awk '/^test result:/ { n += $4 + $6 + $8 } END { exit n == 0 }' "$log"; then
  echo "scripts/test.sh: no Rust test matched: $*" >&2
  status=1
fi
# The API tests need this very build: a failed one fails the run (and they do not run against a
# stale binary).
cargo build --release -p ward 2>&1 | tail -1
build_status=${PIPESTATUS[0]}
if [ "$build_status" -ne 0 ]; then
  echo "scripts/test.sh: the ward binary did not build; the API tests are not run" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
# The kernel tests ran every tier this machine has against the scalar reference; name them.
echo "kernel tiers exercised on this machine:"
"$root/target/release/ward" tiers | sed 's/^/  /'
# The models' invariants (a batch of prompts and decode steps equals each sequence alone, the
# llama.cpp logits fixtures) once more on each other SIMD tier this machine runs.
for tier in $("$root/target/release/ward" tiers | awk '/runs here/ && !/in use/ && $1 != "scalar" { print $1 }'); do
  echo "model tests on the $tier tier:"
  WARD_KERNEL_TIER=$tier cargo test --release -p ward-models --test batch --test logits_fixtures 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
WARD_BIN="$root/target/release/ward" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$api_tests" 2>&1 | tee -a "$log"
api_status=${PIPESTATUS[0]}
set -e
# A test that asks for its tiers in a loop records each missing one many times: count it once.
sort -u -o "$WARD_SKIPPED" "$WARD_SKIPPED"
if [ -s "$WARD_SKIPPED" ]; then
  echo "skipped on this machine (test [part]: why):"
  sed 's/^/  /' "$WARD_SKIPPED"
fi
# libtest counts a test that skipped itself whole ("name: why", no [part]) as passed: it is moved
# to skipped. A skipped part (one tier) is a skipped check of a test that did pass.
awk -v parts="$(wc -l < "$WARD_SKIPPED")" -v whole="$(grep -c '^[^ ]*: ' "$WARD_SKIPPED")" '
     /^test result:/ { passed += $4; failed += $6; skipped += $8 }
     /^[0-9]+ (passed|failed|skipped)/ && / in [0-9.]+s/ {
       for (i = 1; i < NF; i++) { n = $(i + 1); sub(/,$/, "", n)
         if (n == "passed") passed += $i; if (n == "skipped") skipped += $i
         if (n == "failed" || n == "errors" || n == "error") failed += $i } }
     END { printf "%d passed, %d failed, %d skipped\n", passed - whole, failed, skipped + parts }' "$log"
[ "$status" -eq 0 ] && [ "$api_status" -eq 0 ]
