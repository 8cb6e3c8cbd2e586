#!/usr/bin/env bash
# The whole-model criterion benches (benches/benches/models.rs: prefill-512, decode, batched
# decode of 4 and 16 sequences, in tokens/s) once per SIMD kernel tier this machine runs, so
# the tiers sit side by side in criterion's report. The scalar reference is left out: it is the
# definition the tiers are tested against, minutes per whole-model iteration.
#   scripts/bench-tiers.sh [CRITERION ARGS...]     e.g. scripts/bench-tiers.sh decode
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-models.sh >&2
cargo build --release --quiet --bin ward
for tier in $(target/release/ward tiers | awk '/runs here/ && $1 != "scalar" { print $1 }'); do
  echo "== $tier" >&2
  WARD_KERNEL_TIER=$tier cargo bench -p ward-benches --bench models -- "$@"
done
