#!/usr/bin/env bash
# The kernels' tests on aarch64: cross-built with Debian's rustc (packaged with an arm64
# standard library, which this machine's rustup toolchain lacks) and run under qemu user-mode
# emulation. qemu's default CPU model (`max`) has the dot-product extension, so the tests run
# on the best tier (dotprod), on the plain NEON baseline and on the scalar reference; then on a
# Cortex-A53 model, which lacks dotprod: the best tier must fall back to NEON, and forcing
# dotprod must be refused.
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
WARD_KERNEL_TIER=neon cargo test -p ward-kernels "${target[@]}"
WARD_KERNEL_TIER=scalar cargo test -p ward-kernels "${target[@]}"

# Without dotprod: every test passes on NEON (the dotprod tier is skipped, not failed)...
QEMU_CPU=cortex-a53 cargo test -p ward-kernels "${target[@]}"
# ...and forcing dotprod there is refused with the reason, not run on another tier.
out="$(QEMU_CPU=cortex-a53 WARD_KERNEL_TIER=dotprod cargo test -p ward-kernels "${target[@]}" \
  --lib -- tier::tests::a_forced_tier_is_obeyed_or_refused --nocapture 2>&1)"
if ! grep -q 'configured tier: Err(".*lacks the dot-product extension' <<<"$out"; then
  echo "$out" >&2
  echo "WARD_KERNEL_TIER=dotprod was not refused on a CPU without dotprod" >&2
  exit 1
fi
echo "WARD_KERNEL_TIER=dotprod is refused on cortex-a53, as it should be"
