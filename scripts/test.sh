#!/usr/bin/env bash
# The whole test suite, from a fresh machine: fetch and verify the test models, then build and
# run every test (unit, hostile-file, tokenizer/template/logit fixtures, engine and CLI) with
# optimised code, since several tests run the real models.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-models.sh
cargo test --release --workspace "$@"
