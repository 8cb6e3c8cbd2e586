#!/usr/bin/env bash
# Fuzz what Ward reads from outside (fuzz/fuzz_targets/: GGUF files, tokenizer input and output,
# chat templates, request bodies, JSON schemas with their documents, audit logs) with libFuzzer,
# on the stable toolchain: no cargo-fuzz and no nightly, only cargo and a C++ compiler (for
# libFuzzer itself, which libfuzzer-sys compiles). CI runs each target for a minute; by hand,
# run them for hours.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET) and the corpus earlier runs
# grew (fuzz/corpus/TARGET, git-ignored). Prints the executions each target ran; exits 1 if any
# target crashed, hung or ran out of memory, leaving the input that did it in
# fuzz/artifacts/TARGET/ (rerun one with: fuzz/target/<host>/release/TARGET FILE).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

all=(gguf tokenizer template request json_schema audit_verify)
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz: no target named $t (targets: ${all[*]})" >&2; exit 2; }
done

# The tokenizer and template targets run on the test models' real vocabularies.
scripts/fetch-models.sh

# What cargo-fuzz passes, minus the sanitizer (AddressSanitizer needs nightly): coverage
# counters and comparison tracing for libFuzzer, `cfg(fuzzing)`, and debug assertions and
# overflow checks in an optimised build. Built for the host triple named explicitly, so that
# build scripts and proc-macros are not instrumented.
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions \
-Coverflow-checks -Cforce-frame-pointers=yes"
start=$SECONDS
cargo build --release --locked --manifest-path fuzz/Cargo.toml --target "$host" \
  --target-dir fuzz/target --bins
echo "fuzz: built in $((SECONDS - start)) s"

# Longest input per target: a few tiny GGUF files, a page of text, a conversation.
max_len() {
  case $1 in
    gguf) echo 65536 ;;
    tokenizer | json_schema) echo 4096 ;;
    *) echo 16384 ;;
  esac
}

failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" fuzz/target/logs
  log="fuzz/target/logs/$t.log"
  dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
  echo "fuzz: $t for $seconds s"
  status=0
  # -timeout: one input running this long is a hang. -rss_limit_mb: past this, a blow-up.
  "fuzz/target/$host/release/$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2560 \
    -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
    "${dict[@]}" "fuzz/corpus/$t" "fuzz/seeds/$t" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  line=$(printf '%-13s %12s executions (%s/s), corpus %s' "$t" "${execs:-?}" "${rate:-?}" "$corpus")
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    line="$line: FAILED (exit $status), input in fuzz/artifacts/$t/"
    tail -n 60 "$log"
  fi
  summary+=("$line")
  echo "fuzz: $line"
done

echo "fuzz: executions per target ($seconds s each):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (full logs in fuzz/target/logs/)"
  exit 1
fi
echo "fuzz: no crashes, hangs or blow-ups"
