#!/usr/bin/env bash
# Runs the stack on Docker Compose for a person: builds the images (cached by content), starts
# every service, waits until all are healthy and prints the gateway's URL.
# Project name: $ECOMM_COMPOSE_PROJECT (default ecomm). Extra arguments go to `up`, e.g.
# `scripts/docker-up.sh --scale product=3`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
compose=(docker-compose -p "${ECOMM_COMPOSE_PROJECT:-ecomm}" -f "$here/ecomm-services/deploy/docker/compose.yml")

"$here/scripts/docker-ensure.sh"
"$here/scripts/docker-images.sh"
"${compose[@]}" up -d "$@"

# `up -d` returns once the gateway started (its dependencies were healthy); wait for it too.
for _ in $(seq 1 60); do
  state=$(docker inspect -f '{{.State.Health.Status}}' "$("${compose[@]}" ps -q gateway)" 2>/dev/null || true)
  [[ "$state" == healthy ]] && break
  sleep 1
done
"${compose[@]}" ps
addr=$("${compose[@]}" port gateway 3000)
echo
echo "gateway: http://$addr/api/products   (stop with: just docker-down)"
