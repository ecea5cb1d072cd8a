#!/usr/bin/env bash
# Runs a command as root: directly when already root (as on CI machines, where sudo is not even
# installed), else through sudo, keeping PATH and the cargo/rustup homes so the same toolchain
# and target directory are used. Without root and without sudo it fails with one line.
#
# Usage: scripts/as-root.sh COMMAND [ARG…]   (the justfile's root-only recipes use it, so the
# README's commands work as written whether or not the user is root)
set -euo pipefail
(($#)) || { echo "as-root: expected a command to run" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] && exec "$@"
if command -v sudo >/dev/null 2>&1; then
  exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME,CARGO_TARGET_DIR,CARGO_TERM_COLOR,CARGO_INCREMENTAL,ECOMM_REQUIRE_ALL,ECOMM_LAB_KEEP,ECOMM_IMAGE_CACHE,RUST_LOG,VM_ACCEL,VM_BENCH_JSON -- "$@"
fi
echo "as-root: '$1' needs root and sudo is not installed; run the same command as root" >&2
exit 2
