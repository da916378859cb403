#!/usr/bin/env bash
# One command for the GPU machine: builds frugal with CUDA for sm_90, runs the
# gpu test label, synthesizes Llama-3-8B-shaped models (random weights, the
# vocabulary of a carried tiny GGUF) in F16 / Q8_0 / Q4_K_M / Q4_0, runs
# `frugal bench --device cuda` on each, and writes a table with the fraction
# of the decode bandwidth roofline to bench/results/gpu-<date>.md.
#
#   bench/gpu/run-on-device.sh [VOCAB_GGUF] [TYPES...]
#
# Environment: SKIP_TESTS=1 skips the test label, MEMBW_GBPS (default 4300:
# measured device-to-device copy bandwidth of an H200), BENCH_REPS (default 3),
# MODEL_DIR (where synthesized models go, default /tmp/frugal-bench-models),
# SHARED_DIR (models/refs for the tests, default carry/shared).
# Designed to fit in one 10-minute call: build ~2-3 min on 16 cores, tests
# < 1 min, synth + bench ~1 min per type.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
vocab=${1:-}
shift || true
types=("$@")
[ ${#types[@]} -eq 0 ] && types=(f16 q8_0 q4_k_m q4_0)
membw=${MEMBW_GBPS:-4300}
reps=${BENCH_REPS:-3}
models=${MODEL_DIR:-/tmp/frugal-bench-models}
shared=${SHARED_DIR:-$root/carry/shared}
build=$root/build/gpu
mkdir -p "$models" bench/results

if [ -n "${FRUGAL_BIN_DIR:-}" ]; then
  # Prebuilt binaries (a machine without the build dependencies: PCRE2,
  # CLI11, nlohmann-json, GoogleTest, cpp-httplib); their extra shared
  # libraries may sit in $FRUGAL_BIN_DIR/../lib.
  export LD_LIBRARY_PATH=$FRUGAL_BIN_DIR/../lib:${LD_LIBRARY_PATH:-}
  frugal=$FRUGAL_BIN_DIR/frugal
  tests=$FRUGAL_BIN_DIR/frugal_gpu_tests
else
  echo "== build ($(nproc) cores)"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DFRUGAL_CUDA=ON -DFRUGAL_SHARED_DIR="$shared" >/dev/null
  cmake --build "$build" -j "$(nproc)" --target frugal frugal_gpu_tests
  frugal=$build/bin/frugal
  tests=$build/tests/gpu/frugal_gpu_tests
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  echo "== gpu tests"
  FRUGAL_SHARED_DIR=$shared "$tests" --gtest_brief=1 ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER} || echo "GPU TESTS FAILED"
fi

[ -z "$vocab" ] && vocab=$(ls "$shared"/models/gguf/*.gguf 2>/dev/null | head -1)
if [ -z "$vocab" ]; then
  echo "no GGUF for the vocabulary; skipping benchmarks"
  exit 0
fi

stamp=$(date -u +%Y-%m-%d)
out=bench/results/gpu-$stamp.md
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo unknown)
{
  echo "# frugal CUDA backend on $gpu_name ($stamp)"
  echo
  echo "Command: \`bench/gpu/run-on-device.sh\` (frugal bench --device cuda -p 512 -n 128 -r $reps --membw-gbps $membw)."
  echo "Models: \`frugal synth --shape llama3-8b --type TYPE --vocab-from $(basename "$vocab")\` (random weights,"
  echo "Llama-3-8B shape with the vocabulary of the given file). Roofline: $membw GB/s ÷ weight bytes streamed per token."
  echo
  echo "| type | pp512 tok/s | tg128 tok/s | tg128 GB/s | tg128 % of roofline | pp512 TFLOP/s |"
  echo "| --- | --- | --- | --- | --- | --- |"
} >"$out"

for t in "${types[@]}"; do
  f=$models/llama3-8b-$t.gguf
  if [ ! -f "$f" ]; then
    echo "== synth $t"
    "$frugal" synth --shape llama3-8b --type "$t" --vocab-from "$vocab" -o "$f" >/dev/null
  fi
  echo "== bench $t"
  json=$("$frugal" bench -m "$f" --device cuda -p 512 -n 128 -r "$reps" --membw-gbps "$membw" --json)
  echo "$json"
  python3 - "$t" "$json" >>"$out" <<'PY'
import json, sys
t, rows = sys.argv[1], json.loads(sys.argv[2])
pp = next((r for r in rows if r["test"].startswith("pp")), {})
tg = next((r for r in rows if r["test"].startswith("tg")), {})
print(f"| {t} | {pp.get('tok_s_median', 0):,.0f} | {tg.get('tok_s_median', 0):,.1f} | {tg.get('gbps', 0):,.0f} | "
      f"{100 * tg.get('roofline_frac', 0):.0f}% | {pp.get('gflops', 0) / 1000:,.1f} |")
PY
done
echo
cat "$out"
