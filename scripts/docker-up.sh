#!/usr/bin/env bash
# Runs the stack on Docker Compose for a person: builds the images (cached by content), then
# starts the router and every declared node one by one in the file's (= the declaration's start)
# order, wires each right after it starts and waits until it is healthy, and prints the
# gateway's URL. Project name: $ECOMM_COMPOSE_PROJECT (default ecomm).
#
# Wiring (what the xtests Compose deployment does over netlink): inside the container's own
# network namespace (nsenter -t <pid> -n; never the host's), the router gets the declared
# policy's nftables table (its label ecomm.nft) and loses its default route; every node gets
# the routes of its label ecomm.routes (default via the router's address on its tier).
# A node started again later (`docker start`) must be wired again: run this script again.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
compose=(docker-compose -p "${ECOMM_COMPOSE_PROJECT:-ecomm}" -f "$here/ecomm-services/deploy/docker/compose.yml")

"$here/scripts/docker-ensure.sh"
"$here/scripts/docker-images.sh"
command -v nsenter >/dev/null && command -v nft >/dev/null && command -v ip >/dev/null \
  || { echo "docker-up: needs nsenter, nft and ip (just setup)" >&2; exit 2; }

label() { docker inspect -f "{{index .Config.Labels \"$2\"}}" "$1"; }

wire() {
  local id=$1 pid routes r
  pid=$(docker inspect -f '{{.State.Pid}}' "$id")
  while nsenter -t "$pid" -n ip -4 route show default | grep -q .; do
    nsenter -t "$pid" -n ip -4 route del default
  done
  if [[ -n "$(label "$id" ecomm.nft)" ]]; then
    label "$id" ecomm.nft | nsenter -t "$pid" -n nft -j -f -
  fi
  routes=$(label "$id" ecomm.routes)
  IFS=';' read -ra rs <<<"$routes"
  for r in "${rs[@]}"; do
    # shellcheck disable=SC2086 # a route is several words
    [[ -n "$r" ]] && nsenter -t "$pid" -n ip route replace $r
  done
}

healthy() {
  local id=$1 state
  for _ in $(seq 1 240); do
    state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
    case "$state" in
      "running healthy" | "running none") return 0 ;;
      exited*|dead*) echo "docker-up: $2 is $state" >&2; docker logs --tail 20 "$id" >&2; return 1 ;;
    esac
    sleep 0.5
  done
  echo "docker-up: $2 not healthy ($state)" >&2
  return 1
}

for svc in $("${compose[@]}" config --services); do
  "${compose[@]}" up -d --no-deps "$svc"
  id=$("${compose[@]}" ps -q "$svc")
  wire "$id"
  healthy "$id" "$svc"
done
"${compose[@]}" ps
addr=$("${compose[@]}" port gateway 3000)
echo
echo "gateway: http://$addr/api/products   (stop with: just docker-down)"
