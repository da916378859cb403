#!/usr/bin/env bash
# Builds the libFuzzer target fuzz_gguf with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, writes the seed corpus and fuzzes the GGUF
# reader for SECONDS (default 60). Findings land in build/fuzz/artifacts/.
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
build=build/fuzz
cxx=$(command -v clang++-14 || command -v clang++ || true)
cc=$(command -v clang-14 || command -v clang || true)
if [ -z "$cxx" ] || [ -z "$cc" ]; then
  echo "fuzz.sh: clang is needed (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" \
  -DFRUGAL_FUZZ=ON -DFRUGAL_SANITIZE=ON >/dev/null
# One job: the fuzz build is usually run next to other builds.
ninja -C "$build" -j "${FUZZ_JOBS:-1}" fuzz_gguf fuzz_gguf_seeds
bin="$build/tests/fuzz"
mkdir -p "$build/seeds" "$build/corpus" "$build/artifacts"
"$bin/fuzz_gguf_seeds" "$build/seeds"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# New inputs go to corpus/ (kept between runs); seeds/ is read-only input.
exec "$bin/fuzz_gguf" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 \
  -dict=tests/fuzz/gguf.dict -artifact_prefix="$build/artifacts/" -print_final_stats=1 \
  "$@" "$build/corpus" "$build/seeds"
