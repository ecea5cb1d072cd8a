# The workspace's task runner. `just --list` shows every recipe.
set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TERM_COLOR := env_var_or_default("CARGO_TERM_COLOR", "auto")

# List the recipes.
default:
    @just --list

# Install the Debian packages everything needs (idempotent, quiet when nothing is missing).
setup:
    @scripts/setup.sh

# Bring up the three-tier lab (root): topology, PostgreSQL, Redis, services, host link. `just up --pinned` runs them from the pinned images (images.lock), not the host's programs.
up *ARGS: setup _lab-build
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" up {{ARGS}}

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

# The seeds' comparison in one run (root): netns lab, Compose and one-node Swarm, `ab -n 1000 -c 50` + wrk, interleaved rounds; table, target/bench/compare.json.
bench-compare ROUNDS="5" WRK_SECONDS="10": setup docker-ensure _lab-build
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" bench-compare --rounds {{ROUNDS}} --wrk-seconds {{WRK_SECONDS}} --out target/bench/compare.json

# Run the scenarios and print the matrix, e.g. `just scenarios --backend netns ecomm-services/deploy/three-tier-wide.toml`.
scenarios *ARGS: setup _lab-build
    @cargo build --release -q -p netns-kit -p vm --bin netns-kit --bin vm-agent
    @scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/lab" scenarios {{ARGS}}

# Build the lab driver and the services (release; a no-op on a built tree).
[private]
_lab-build:
    @cargo build --release -q -p xtests -p ecomm-services --bin lab --bin ecomm

# Run every test: unit, property, privileged netns, services against real PostgreSQL/Redis.
test: setup docker-ensure examples fuzz-smoke
    scripts/as-root.sh cargo test --workspace --all-targets --all-features

# Run the VM driver's tests, then every scenario on the 3-VM cluster (one boot per environment file) under QEMU.
test-vm: setup
    cargo build -p netns-kit -p ecomm-services -p vm --bins
    scripts/as-root.sh cargo test -p vm --all-targets -- --test-threads=1
    scripts/as-root.sh cargo test -p xtests --test scenarios_vm

# Image sizes, a cold and a cached image build, one pinned-image VM's boot, then boot time per VM and time per scenario for each environment file; JSON in target/bench/images.json and target/bench/vm.json.
bench-vm: setup
    cargo build -p netns-kit -p ecomm-services -p vm --bins
    cargo build --release -q -p ecomm-services --bin ecomm
    cargo build -q -p images --bin images
    "${CARGO_TARGET_DIR:-target}/debug/images" bench --ecomm "${CARGO_TARGET_DIR:-target}/release/ecomm" --json target/bench/images.json
    cargo test -q -p vm --test pinned -- --nocapture 2>&1 | grep -E '^\[vm\] (IMAGE|pinned: booted|stack: booted|phase)|test result'
    mkdir -p target/bench
    VM_BENCH_JSON="$PWD/target/bench/vm.json" scripts/as-root.sh cargo test -p xtests --test scenarios_vm

# Run every benchmark; tables print, JSON lands under target/bench/.
bench: bench-topology bench-services bench-gateway bench-lab bench-compare bench-vm

# Services under load: gateway vs nginx (wrk -c50), ab -n 1000 -c 50, orders/s, RSS; JSON in target/bench/services.json.
bench-services: setup
    cargo build --release -p ecomm-services --bin ecomm --example bench_services
    scripts/as-root.sh cargo run --release -p ecomm-services --example bench_services

# Gateway vs nginx vs HAProxy in the lab's gateway namespace, same product instances: c1/c50/c200, cached read and list, req/s, p50/p99, CPU µs and syscalls per request; JSON in target/bench/gateway.json.
bench-gateway: setup
    nice -n 10 cargo build --release -p ecomm-services --bin ecomm -p xtests --example bench_gateway
    scripts/as-root.sh env ECOMM_BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/release/ecomm" "${CARGO_TARGET_DIR:-target}/release/examples/bench_gateway"

# netns-kit apply/destroy against the seeds' shell script (library and whole-process CLI, paused and back-to-back, with where the CLI's time goes), and 10/100/1000 nodes.
bench-topology: setup
    cargo build --release -p netns-kit --bin netns-kit --example bench_topology
    scripts/as-root.sh "${CARGO_TARGET_DIR:-target}/release/examples/bench_topology"

# Format the workspace.
fmt:
    cargo fmt --all

# Formatting check and clippy with warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

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

# Build and run every netns-kit example as root; each asserts what it shows (elevates itself).
examples:
    @scripts/as-root.sh scripts/netns-kit-examples.sh

# Re-resolve images.lock (every Debian input of the images, by SHA-256) from the apt lists; print what moved.
lock:
    @if [ "$(id -u)" = 0 ]; then apt-get update -qq; fi
    @cargo build -q -p images --bin images
    @"${CARGO_TARGET_DIR:-target}/debug/images" lock

# Build every image from images.lock (no Docker, no root): one `IMAGE <name> sha256:<hex> <size>` line each.
images:
    @cargo build --release -q -p ecomm-services --bin ecomm
    @cargo build -q -p images --bin images
    @"${CARGO_TARGET_DIR:-target}/debug/images" build --ecomm "${CARGO_TARGET_DIR:-target}/release/ecomm"

# Fuzz TARGET (topology, response_head, chunked) for SECONDS; crashes land in fuzz/artifacts/TARGET.
fuzz TARGET SECONDS="60": _fuzz-install
    cd fuzz && RUSTC_BOOTSTRAP=1 nice -n 10 cargo fuzz run {{TARGET}} corpus/{{TARGET}} -- -max_total_time={{SECONDS}} -print_final_stats=1

# Fuzz every target for SECONDS each.
fuzz-all SECONDS="60": _fuzz-install
    for target in $(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list); do just fuzz "$target" {{SECONDS}}; done

# A short fuzz run of every target (15 s each), built unoptimized (`--dev`: a quarter of the
# release build's time on a fresh machine); part of `just test`. `just fuzz` fuzzes optimized.
fuzz-smoke: _fuzz-install
    for target in $(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list); do (cd fuzz && RUSTC_BOOTSTRAP=1 nice -n 10 cargo fuzz run --dev "$target" "corpus/$target" -- -max_total_time=15 -print_final_stats=1); done

# Install cargo-fuzz when missing (a fresh CI machine).
[private]
_fuzz-install:
    @command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
