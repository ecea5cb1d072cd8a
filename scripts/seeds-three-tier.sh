#!/usr/bin/env bash
# The seeds' way of building the three-tier network, for the benchmark only
# (`just bench-topology` compares netns-kit against it): one `ip`/`nft` command per object.
# Everything lives in namespaces named <prefix>-*: the bridges in <prefix>-fabric, never in
# the host's root namespace.
#
#   scripts/seeds-three-tier.sh up   PREFIX
#   scripts/seeds-three-tier.sh down PREFIX
set -euo pipefail

action=${1:?usage: $0 up|down PREFIX}
p=${2:?usage: $0 up|down PREFIX}
case "$p" in *[!a-zA-Z0-9-]*|"") echo "bad prefix: $p" >&2; exit 2 ;; esac

fabric="$p-fabric"
router="$p-router"
# node:tier:address
nodes=(
  gateway:frontend:172.20.0.10
  registry:backend:172.21.0.10
  product-1:backend:172.21.0.21
  product-2:backend:172.21.0.22
  order-1:backend:172.21.0.31
  redis:database:172.22.0.10
  postgres:database:172.22.0.20
)
declare -A subnet=([frontend]=172.20.0 [backend]=172.21.0 [database]=172.22.0)
declare -A short=([frontend]=fe [backend]=be [database]=db)

up() {
  ip netns add "$fabric"
  ip netns add "$router"
  ip -n "$fabric" link set lo up
  ip -n "$router" link set lo up
  ip netns exec "$router" sysctl -qw net.ipv4.ip_forward=1
  for tier in frontend backend database; do
    ip -n "$fabric" link add "br-$tier" type bridge
    ip -n "$fabric" link set "br-$tier" up
    # the router's leg on this tier
    ip -n "$fabric" link add "r-${short[$tier]}" type veth peer name "eth-${short[$tier]}"
    ip -n "$fabric" link set "eth-${short[$tier]}" netns "$router"
    ip -n "$fabric" link set "r-${short[$tier]}" master "br-$tier"
    ip -n "$fabric" link set "r-${short[$tier]}" up
    ip -n "$router" addr add "${subnet[$tier]}.1/24" dev "eth-${short[$tier]}"
    ip -n "$router" link set "eth-${short[$tier]}" up
  done
  for entry in "${nodes[@]}"; do
    IFS=: read -r node tier addr <<<"$entry"
    ns="$p-$node"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$fabric" link add "v-$node" type veth peer name eth0
    ip -n "$fabric" link set eth0 netns "$ns"
    ip -n "$fabric" link set "v-$node" master "br-$tier"
    ip -n "$fabric" link set "v-$node" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "${subnet[$tier]}.1"
  done
  # Tier policy in the router's forward chain, one command per rule.
  local x=(ip netns exec "$router" nft)
  "${x[@]}" add table inet seeds
  "${x[@]}" add chain inet seeds forward '{ type filter hook forward priority 0; policy drop; }'
  "${x[@]}" add rule inet seeds forward ct state established,related accept
  "${x[@]}" add rule inet seeds forward ip saddr 172.20.0.0/24 ip daddr 172.21.0.0/24 tcp dport '{ 8500, 8001, 8002 }' accept
  "${x[@]}" add rule inet seeds forward ip saddr 172.21.0.0/24 ip daddr 172.21.0.0/24 accept
  for src in 172.21.0.21 172.21.0.22; do
    "${x[@]}" add rule inet seeds forward ip saddr "$src" ip daddr 172.22.0.10 tcp dport 6379 accept
    "${x[@]}" add rule inet seeds forward ip saddr "$src" ip daddr 172.22.0.20 tcp dport 5432 accept
  done
  "${x[@]}" add rule inet seeds forward ip saddr 172.21.0.31 ip daddr 172.22.0.20 tcp dport 5432 accept
}

down() {
  for entry in "${nodes[@]}"; do
    ip netns del "$p-${entry%%:*}" 2>/dev/null || true
  done
  ip netns del "$router" 2>/dev/null || true
  ip netns del "$fabric" 2>/dev/null || true
}

case "$action" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down PREFIX" >&2; exit 2 ;;
esac
