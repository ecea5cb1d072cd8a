#!/usr/bin/env bash
# Makes sure a Docker daemon answers on /var/run/docker.sock.
# Idempotent and quiet when dockerd is already running. There is no systemd on these machines:
# when the daemon is down, start `dockerd` in the background (root only), log to
# /var/log/dockerd.log, and wait up to 60 s for it to answer.
set -euo pipefail

docker_cli() { command -v docker >/dev/null 2>&1; }

answering() { docker_cli && timeout 10 docker info >/dev/null 2>&1; }

answering && exit 0

# Without Docker the Docker tests skip, so a missing daemon only fails when CI demands all.
give_up() {
  echo "docker-ensure: $1" >&2
  [[ "${ECOMM_REQUIRE_ALL:-}" == 1 ]] && exit 2
  exit 0
}

if ! command -v dockerd >/dev/null 2>&1; then
  give_up "dockerd is not installed (just setup installs docker.io); Docker tests will skip"
fi
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    exec "$(dirname "${BASH_SOURCE[0]}")/as-root.sh" "${BASH_SOURCE[0]}"
  fi
  give_up "dockerd is not running and starting it needs root (no sudo here); Docker tests will skip"
fi

log=/var/log/dockerd.log
echo "docker-ensure: starting dockerd (log: $log)" >&2
# setsid: the daemon outlives this script and the terminal that ran it.
# Networks Docker numbers itself (docker_gwbridge, unnumbered user networks) come from
# 10.200.0.0/16, never from 172.16/12 where the stack's fixed tiers (172.20-22.0.0/24) live.
setsid dockerd --default-address-pool base=10.200.0.0/16,size=24 >>"$log" 2>&1 </dev/null &

for _ in $(seq 1 120); do
  answering && exit 0
  sleep 0.5
done
echo "docker-ensure: dockerd did not answer within 60 s; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
