#!/usr/bin/env bash
# Builds frugal (Release) and generates text with the bundled demo model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target frugal
exec build/release/bin/frugal run -m models/tiny-llama-target-Q8_0.gguf \
  -p "${1:-Once upon a time}" -n "${2:-64}" --temp 0.7 --seed 42 -v
