#!/usr/bin/env bash
# The kernels' tests on aarch64, where the NEON tier runs: cross-built with Debian's rustc
# (packaged with an arm64 standard library, which this machine's rustup toolchain lacks) and
# run under qemu user-mode emulation, once on the best tier and once on the scalar reference.
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
WARD_KERNEL_TIER=scalar cargo test -p ward-kernels "${target[@]}"
