#!/usr/bin/env bash
# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (the `asan`
# preset): builds every unit-labelled test binary and the CLI, runs
# `ctest --preset asan` (label unit: includes the malformed-GGUF corpus, which
# also drives the sanitized `frugal inspect` over the corrupt files), then
# checks that the sanitized CLI reads every real GGUF file in ../shared.
# Any sanitizer report aborts the process, which fails the run.
#   scripts/ci-asan.sh            (FRUGAL_JOBS overrides the build parallelism)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${FRUGAL_JOBS:-$(nproc)}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

cmake --preset asan >/dev/null

# The unit-labelled test folders (see tests/CMakeLists.txt); a folder without
# tests yet has no target.
targets=(frugal)
for dir in core formats quant kernels tokenizer engine; do
  if compgen -G "tests/$dir/*_test.cpp" >/dev/null; then
    targets+=("frugal_${dir}_tests")
  fi
done
echo "ci-asan: building ${targets[*]} (-j $jobs)"
cmake --build --preset asan -j "$jobs" --target "${targets[@]}"

echo "ci-asan: ctest --preset asan (label unit)"
ctest --preset asan -j "$jobs" --timeout 600

# Valid files must load cleanly: exit 0 and no sanitizer output.
echo "ci-asan: frugal inspect on the shared GGUF files"
shared=${FRUGAL_SHARED_DIR:-../shared}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
n=0
for f in "$shared"/models/gguf/*.gguf "$shared"/tokenizer-vectors/*.gguf; do
  [ -e "$f" ] || continue
  if ! build/asan/bin/frugal inspect "$f" >/dev/null 2>"$log" || [ -s "$log" ]; then
    echo "ci-asan: frugal inspect $f failed:" >&2
    cat "$log" >&2
    exit 1
  fi
  n=$((n + 1))
done
echo "ci-asan: $n files inspected"
echo "ci-asan: OK"
