#!/usr/bin/env bash
# The kernels' tests on aarch64: cross-built with Debian's rustc (packaged with an arm64
# standard library, which this machine's rustup toolchain lacks) and run under qemu user-mode
# emulation. qemu's default CPU model (`max`) has the dot-product and int8 matrix-multiply
# extensions, so the tests run on the best tier (i8mm), on dotprod, on the plain NEON baseline
# and on the scalar reference; then on a Neoverse-N1 model (dotprod without i8mm) and a
# Cortex-A53 model (neither), where the best tier must fall back and forcing the missing tier
# must be refused.
# Installs what it needs from Debian's packages (root, or sudo). Correctness only: emulated
# timings mean nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! [ -x /usr/bin/rustc ] || ! [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] ||
   ! command -v qemu-aarch64-static >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  sudo_if_needed dpkg --add-architecture arm64
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
fi

export RUSTC=/usr/bin/rustc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# `-L /`: the arm64 libc that the standard library's package pulls in lives under /lib; mixing
# it with the cross-compiler's copy under /usr/aarch64-linux-gnu hangs in pthread_create.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /"
target=(--release --target aarch64-unknown-linux-gnu --target-dir "$root/target/aarch64")
cargo test -p ward-kernels "${target[@]}"
for tier in dotprod neon scalar; do
  WARD_KERNEL_TIER=$tier cargo test -p ward-kernels "${target[@]}"
done

# On a CPU model without tier $2 (lacking $3): every test passes on what it has (the tiers it
# lacks are skipped, not failed), and forcing $2 is refused with the reason rather than run on
# another tier.
without() {
  QEMU_CPU=$1 cargo test -p ward-kernels "${target[@]}"
  local out
  out="$(QEMU_CPU=$1 WARD_KERNEL_TIER=$2 cargo test -p ward-kernels "${target[@]}" \
    --lib -- tier::tests::a_forced_tier_is_obeyed_or_refused --nocapture 2>&1)"
  if ! grep -q "configured tier: Err(\".*lacks $3" <<<"$out"; then
    echo "$out" >&2
    echo "WARD_KERNEL_TIER=$2 was not refused on $1" >&2
    exit 1
  fi
  echo "WARD_KERNEL_TIER=$2 is refused on $1, as it should be"
}
without neoverse-n1 i8mm "the int8 matrix-multiply extension"
without cortex-a53 dotprod "the dot-product extension"
