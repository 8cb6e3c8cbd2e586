#!/usr/bin/env bash
# Run ward from a fresh checkout: fetches the test models if missing, builds the release binary
# if needed, then runs `ward "$@"`. Build output goes to stderr so stdout is ward's alone.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-models.sh >&2
cargo build --release --quiet --bin ward >&2
exec "$root/target/release/ward" "$@"
