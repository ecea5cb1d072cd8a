#!/usr/bin/env bash
# Installs the Debian packages the lab, the tests and the benchmarks need.
# Idempotent: prints nothing and touches nothing when every package is present.
set -euo pipefail

packages=(
  iproute2 nftables            # ip, bridge, tc, nft: netns-kit's kernel tools
  redis-server postgresql      # the real data stores (fixtures start their own instances)
  curl apache2-utils wrk       # curl for people, ab and wrk for the benchmarks
  nginx-light haproxy          # the reference proxies in bench-services / bench-gateway
  strace linux-perf            # syscalls per request (bench-gateway), profiles
  qemu-system-x86 busybox-static cpio zstd  # the VM suite
  graphviz                     # renders `netns-kit graph --format dot`
  docker.io docker-compose     # the Docker path: images, Compose, one-node Swarm
  nix-bin                      # nix-instantiate: flake.nix parses (no binary cache for `nix flake check`)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
(( ${#missing[@]} == 0 )) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing Debian packages: ${missing[*]}; installing as root" >&2
  exec "$(dirname "${BASH_SOURCE[0]}")/as-root.sh" "${BASH_SOURCE[0]}"
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged servers; our fixtures run their own instances on free ports.
for svc in redis-server postgresql nginx haproxy; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done
