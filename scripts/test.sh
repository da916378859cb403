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
ctest --preset release -j 1
if [ -x scripts/ci-asan.sh ]; then
  scripts/ci-asan.sh
fi
