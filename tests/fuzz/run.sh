#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time from its committed
# seed corpus (copied, so the repository is never written). Usage: tests/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
cxx="$(command -v clang++-14 || command -v clang++ || true)"
if [ -z "$cxx" ]; then
  echo "fuzz: clang++ not found (make deps installs clang-14)" >&2
  exit 1
fi
build=build-fuzz
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLAKEVAULT_FUZZ=ON >/dev/null
targets=$(find src -name '*_fuzz.cpp' -printf '%f\n' | sed 's/\.cpp$//' | sort)
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc)" --target $targets >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for t in $targets; do
  mkdir -p "$work/$t"
  if [ -d "tests/fuzz/corpus/$t" ]; then cp -r "tests/fuzz/corpus/$t/." "$work/$t/"; fi
  log="$work/$t.log"
  if "$build/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$work/$t-" "$work/$t" >"$log" 2>&1; then
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 | awk '{print $2}')
    echo "fuzz: $t: ${runs:-?} executions in ${seconds}s, no crash"
  else
    echo "fuzz: $t FAILED:" >&2
    tail -40 "$log" >&2
    mkdir -p fuzz-artifacts && cp "$work/$t-"* fuzz-artifacts/ 2>/dev/null || true
    status=1
  fi
done
exit $status
