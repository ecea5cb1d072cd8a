# The workspace's task runner. `just --list` shows every recipe.
set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TERM_COLOR := env_var_or_default("CARGO_TERM_COLOR", "auto")

# List the recipes.
default:
    @just --list

# Install the Debian packages everything needs (idempotent, quiet when nothing is missing).
setup:
    @scripts/setup.sh

# Bring up the three-tier lab (root): topology, PostgreSQL, Redis, services, host link.
up: setup _lab-build
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" up

# Stop every lab process and remove every namespace, link, rule and the host route.
down: _lab-build
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" down

# Show each lab component's health.
status: _lab-build
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" status

# Follow one lab component's log (gateway, registry, product-1, order-1, redis, postgres, …).
logs COMPONENT: _lab-build
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" logs {{COMPONENT}}

# Run COUNT instances of a lab service, e.g. `just scale product 3` (picked up via the registry).
scale SERVICE COUNT: _lab-build
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" scale {{SERVICE}} {{COUNT}}

# pg_dump the lab's orders database into FILE (run inside the postgres namespace).
backup FILE="orders-backup.sql": _lab-build
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" backup {{FILE}}

# Replace the lab's orders database with the dump in FILE (one transaction).
restore FILE: _lab-build
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" restore {{FILE}}

# The seeds' `ab -n 1000 -c 50` plus wrk against the lab (up); target/bench/lab.json.
bench-lab: setup up
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" bench --out target/bench/lab.json

# Build the lab driver and the services (release; a no-op on a built tree).
[private]
_lab-build:
    @cargo build --release -q -p xtests -p ecomm-services --bin lab --bin ecomm

# Run every test: unit, property, privileged netns, services against real PostgreSQL/Redis.
test: setup docker-ensure examples
    scripts/as-root.sh cargo test --workspace --all-targets

# Run the multi-VM suite under QEMU.
test-vm: setup
    cargo build -p netns-kit -p ecomm-services --bins
    scripts/as-root.sh cargo test -p vm --all-targets -- --test-threads=1

# Boot time per VM, suite time per test, accelerator; JSON lands in target/bench/vm.json.
bench-vm: setup
    cargo build -p netns-kit -p ecomm-services --bins
    mkdir -p target/bench
    VM_BENCH_JSON="$PWD/target/bench/vm.json" scripts/as-root.sh cargo test -p vm --test suite

# Run every benchmark; tables print, JSON lands under target/bench/.
bench: bench-topology bench-services bench-lab bench-vm

# Services under load: gateway vs nginx (wrk -c50), ab -n 1000 -c 50, orders/s, RSS; JSON in target/bench/services.json.
bench-services: setup
    cargo build --release -p ecomm-services --bin ecomm --example bench_services
    scripts/as-root.sh cargo run --release -p ecomm-services --example bench_services

# netns-kit apply/destroy against the seeds' shell script, and 10/100/1000 nodes.
bench-topology: setup
    scripts/as-root.sh cargo run --release -p netns-kit --example bench_topology

# Format the workspace.
fmt:
    cargo fmt --all

# Formatting check and clippy with warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Start dockerd when it is not answering (root; quiet when it already runs).
docker-ensure:
    @scripts/docker-ensure.sh

# Build ecomm-services:local, ecomm-redis:local, ecomm-postgres:local (cached by content hash).
docker-images: docker-ensure
    @scripts/docker-images.sh

# Run the stack on Docker Compose (127.0.0.1:3000), wait healthy, print the URL.
docker-up: setup docker-ensure
    @scripts/docker-up.sh

# Stop the Compose stack; remove its containers, networks and volumes.
docker-down:
    @scripts/docker-down.sh

# Build and run every netns-kit example as root; each asserts what it shows (not root: skip).
examples:
    @scripts/as-root.sh scripts/netns-kit-examples.sh
