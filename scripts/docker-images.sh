#!/usr/bin/env bash
# Loads the stack's three images, built from images.lock without Docker (see images/):
#   ecomm-services:local  the `ecomm` release binary (entrypoint), for all four services
#   ecomm-redis:local     Debian's redis-server, run as uid 999
#   ecomm-postgres:local  Debian's PostgreSQL 15, run as uid 999, initdb on first start
# Each image is the closure of what its role runs, assembled from the locked Debian packages
# (fetched and checked by SHA-256, never the host's files) and written as a deterministic
# `docker load` archive by `images build`. Its tag is its content: `<name>:c-<16 hex of the
# image ID>`; when that tag exists the load is skipped, and `:local` is re-pointed.
#
# Usage: scripts/docker-images.sh [--ecomm PATH]   (default: $CARGO_TARGET_DIR/release/ecomm,
#        built with `cargo build --release -p ecomm-services --bin ecomm` when missing)
# Prints one line per image: `<name>:local <content tag> built|cached`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target="${CARGO_TARGET_DIR:-$here/target}"
ecomm_bin=""
while (($#)); do
  case "$1" in
    --ecomm) ecomm_bin="$2"; shift 2 ;;
    *) echo "docker-images: unknown argument '$1' (expected --ecomm PATH)" >&2; exit 2 ;;
  esac
done
if [[ -z "$ecomm_bin" ]]; then
  ecomm_bin="$target/release/ecomm"
  (cd "$here" && cargo build --release -q -p ecomm-services --bin ecomm)
fi
[[ -x "$ecomm_bin" ]] || { echo "docker-images: '$ecomm_bin' is not an executable" >&2; exit 2; }

(cd "$here" && cargo build -q -p images --bin images)
built=$("$target/debug/images" build --tags --ecomm "$ecomm_bin" ecomm-services ecomm-redis ecomm-postgres)

while read -r kind name archive tag; do
  [[ "$kind" == PATH ]] || continue
  state=cached
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    docker load -q -i "$archive" >/dev/null
    state=built
  fi
  docker tag "$tag" "$name:local"
  # Older content tags of this image are garbage now (kept if a container still uses them).
  docker image ls --format '{{.Repository}}:{{.Tag}}' "$name" | grep -v -x -e "$tag" -e "$name:local" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
  echo "$name:local $tag $state"
done <<<"$built"
