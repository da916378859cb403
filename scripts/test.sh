#!/usr/bin/env bash
# Builds and runs the whole test suite: the Release build with every test
# (unit, model references, CLI), then the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -LE gpu -j 1   # the gpu label needs a GPU (bench/gpu/run-on-device.sh runs it)
if [ -x scripts/ci-asan.sh ]; then
  scripts/ci-asan.sh
fi
