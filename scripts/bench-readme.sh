#!/usr/bin/env bash
# Regenerates the README's Ward-against-llama.cpp table: scripts/bench-vs-llamacpp.sh on the
# three test models (512-token prompt, 128 generated) and on the synthetic Llama-3-8B and
# Qwen2.5-7B shapes (128-token prompt, 16 generated; written here by `ward synth` with their
# real vocabularies when missing, 4.9 and 4.7 GB), with --rounds N (default 5) interleaved rounds,
# 2 threads; then replaces the rows between the README's bench-vs-llamacpp markers. Takes about
# an hour on a 2-core machine (most of it the 7–8B shapes); the rest of that section's prose is
# still written by hand.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds=5
[ "${1:-}" = "--rounds" ] && rounds=$2
scripts/fetch-models.sh >&2
cargo build --release --quiet --bin ward
for shape in "llama3-8b llama-3-instruct" "qwen2.5-7b deepseek-r1-distill-qwen-7b"; do
  set -- $shape
  [ -f "models/synthetic-$1-q4_k_m.gguf" ] || target/release/ward synth "$1" --vocab "models/$2.vocab.gguf" >&2
done
report=$(mktemp)
trap 'rm -f "$report"' EXIT
scripts/bench-vs-llamacpp.sh --rounds "$rounds" | tee -a "$report" >&2
scripts/bench-vs-llamacpp.sh --rounds "$rounds" --prompt-tokens 128 --gen-tokens 16 \
  models/synthetic-llama3-8b-q4_k_m.gguf models/synthetic-qwen2.5-7b-q4_k_m.gguf | tee -a "$report" >&2
python3 - "$report" README.md <<'PY'
import re, sys
report, readme = sys.argv[1], sys.argv[2]
rows = [l for l in open(report).read().splitlines() if l.startswith("| ")]
cpu = next(l for l in open(report).read().splitlines() if l.startswith("cpu:"))
table = "\n".join([
    f"<!-- bench-vs-llamacpp: scripts/bench-readme.sh; {cpu} -->",
    "| model | Ward prefill | llama.cpp prefill | ratio | Ward decode | llama.cpp decode | ratio |",
    "|---|---|---|---|---|---|---|",
    *rows,
    "<!-- /bench-vs-llamacpp -->",
])
text = open(readme).read()
new, n = re.subn(r"<!-- bench-vs-llamacpp.*?<!-- /bench-vs-llamacpp -->", lambda _: table, text, flags=re.S)
if n != 1:
    sys.exit("README.md lacks the bench-vs-llamacpp markers")
open(readme, "w").write(new)
print(table)
PY
