#!/usr/bin/env bash
# `just examples`: build every netns-kit example and run each as root. Every example asserts
# what it demonstrates, so a run is a test; everything it creates lives in namespaces it made.
#
# Not root: nothing is built or run (a message says why); under ECOMM_REQUIRE_ALL=1 that is a
# failure. One example may skip: netem_delay exits 77 and prints "netem unsupported
# on this kernel" when the running kernel has no sch_netem; from any other example, or
# without that message, 77 is a failure like any non-zero code.
set -euo pipefail
cd "$(dirname "$0")/.."

not_examples=(bench_topology)   # a benchmark: `just bench-topology`
may_skip=(netem_delay)          # ... and only when the kernel has no netem
skip_reason="netem unsupported on this kernel"
skip_code=77

examples=()
for file in netns-kit/examples/*.rs; do
  name=$(basename "$file" .rs)
  [[ " ${not_examples[*]} " == *" $name "* ]] || examples+=("$name")
done
(( ${#examples[@]} > 0 )) || { echo "examples: none found under netns-kit/examples" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
  why="the examples create namespaces and links: they need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
  if [[ ${ECOMM_REQUIRE_ALL:-} == 1 ]]; then
    echo "examples: FAILED: $why, and ECOMM_REQUIRE_ALL=1 is set" >&2
    exit 1
  fi
  echo "examples: skipping ${#examples[@]} examples: $why" >&2
  exit 0
fi

build=()
for name in "${examples[@]}"; do build+=(--example "$name"); done
cargo build -q -p netns-kit "${build[@]}"

dir="${CARGO_TARGET_DIR:-target}/debug/examples"
passed=0 failed=0 skipped=0
failures=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for name in "${examples[@]}"; do
  echo "examples: running $name"
  set +e
  timeout 120 "$dir/$name" >"$log" 2>&1
  code=$?
  set -e
  sed "s/^/  $name | /" "$log"
  if (( code == 0 )); then
    passed=$((passed + 1))
  elif (( code == skip_code )) && [[ " ${may_skip[*]} " == *" $name "* ]] \
      && grep -q "$skip_reason" "$log"; then
    skipped=$((skipped + 1))
    echo "examples: skipped $name: $(grep -m1 "$skip_reason" "$log" | sed "s/^SKIP: //")"
  else
    failed=$((failed + 1))
    failures+=("$name (exit $code)")
    echo "examples: FAILED $name (exit $code)"
  fi
done
(( failed == 0 )) || echo "examples: failed: ${failures[*]}"
echo "examples: $passed passed, $failed failed, $skipped skipped"
(( failed == 0 ))
