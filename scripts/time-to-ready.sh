#!/usr/bin/env bash
# Seconds from `ward serve` starting until `GET /ready` answers 200 (the model loaded), for
# each run; the first run is not counted, so the model file is in the page cache for the
# counted ones (which then measure Ward, not the disk). Prints each time and the median.
#
#   scripts/time-to-ready.sh MODEL [RUNS] [WARD]     (RUNS default 3; WARD default target/release/ward)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="$1"
runs="${2:-3}"
ward="${3:-$root/target/release/ward}"
port=$((20000 + RANDOM % 20000))
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# One start: the seconds until /ready, then the server is stopped.
once() {
  local start pid
  start=$(date +%s.%N)
  "$ward" serve --model "$model" --port "$port" --no-ui >"$log" 2>&1 &
  pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/ready"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "ward serve exited before it was ready:" >&2
      tail -5 "$log" >&2
      exit 1
    fi
    sleep 0.02
  done
  echo "$(date +%s.%N) - $start" | bc
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

once >/dev/null # warms the page cache
times=()
for _ in $(seq "$runs"); do
  t=$(once)
  times+=("$t")
  printf '%.2f s\n' "$t"
done
printf 'median %.2f s  (%s)\n' "$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')" \
  "$(basename "$model")"
