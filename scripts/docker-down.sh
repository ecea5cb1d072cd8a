#!/usr/bin/env bash
# Stops the Compose stack started by scripts/docker-up.sh and removes its containers, networks
# and volumes (the PostgreSQL data with them). Project name: $ECOMM_COMPOSE_PROJECT (default ecomm).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
docker-compose -p "${ECOMM_COMPOSE_PROJECT:-ecomm}" -f "$here/ecomm-services/deploy/docker/compose.yml" \
  down -v --remove-orphans
