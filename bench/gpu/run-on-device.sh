#!/usr/bin/env bash
# One command for the GPU machine: builds frugal with CUDA for sm_90 (or takes
# prebuilt binaries), runs the gpu test label, builds llama.cpp's llama-bench
# with CUDA from a snapshot (in the background, while the tests and the model
# synthesis run), synthesizes Llama-3-8B-shaped models (random weights, the
# vocabulary of a carried tiny GGUF), runs `frugal bench --device cuda` and
# llama-bench on each file one after the other, the batched test (64 requests
# through the serving scheduler) on the 16-bit file, and writes a table with
# the decode-roofline fraction and the ratios to bench/results/gpu-<date>.md.
#
#   bench/gpu/run-on-device.sh [VOCAB_GGUF] [TYPES...]
#
# Environment:
#   STAGES       comma list of tests,llama,synth,bench (default: all); the work
#                can be spread over calls on a warm machine: everything built
#                or synthesized is kept and reused when present
#   LLAMA_SRC    llama.cpp source: a directory or a .tar.xz of one (fetched
#                snapshot, carried in an ignored folder); unset: no llama.cpp
#   LLAMA_BUILD  where llama.cpp is built (default build/llama)
#   FRUGAL_BIN_DIR  prebuilt frugal + frugal_gpu_tests (their extra shared
#                libraries in $FRUGAL_BIN_DIR/../lib) instead of building
#   PARALLEL     requests of the batched test (default 64, 0: skip), each 128
#                prompt tokens and 128 generated
#   MEMBW_GBPS   roofline bandwidth (default 4300: measured device-to-device
#                copy bandwidth of an H200); BENCH_REPS (default 3)
#   MODEL_DIR    synthesized models (default build/bench-models)
#   SHARED_DIR   models/refs for the tests (default carry/shared): a copy of
#                ../shared's files, or parts from `bench/gpu/shared-pack.py
#                pack --exclude models/gguf/tiny-llama-target-Q8_0.gguf
#                ../shared carry/shared` (~90 MB in three parts; carry the
#                parts over several calls: they are restored into
#                build/shared and add up there while the machine stays warm;
#                the Q8_0 target comes from the project's models/)
# llama.cpp's CUDA build takes ~5 min on 16 cores; synthesis ~1 min per type;
# each bench ~30 s per engine and type: two 10-minute calls hold it all.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
vocab=${1:-}
shift || true
types=("$@")
[ ${#types[@]} -eq 0 ] && types=(f16 q8_0 q4_k_m q4_0)
stages=",${STAGES:-tests,llama,synth,bench},"
stage() { [[ $stages == *",$1,"* ]]; }
membw=${MEMBW_GBPS:-4300}
reps=${BENCH_REPS:-3}
parallel=${PARALLEL:-64}
models=${MODEL_DIR:-$root/build/bench-models}
shared=${SHARED_DIR:-$root/carry/shared}
llama_build=${LLAMA_BUILD:-$root/build/llama}
llama_bench=$llama_build/build/bin/llama-bench
mkdir -p "$models" bench/results
if compgen -G "$shared/manifest.json" >/dev/null || compgen -G "$shared/part-*/manifest.json" >/dev/null; then
  python3 bench/gpu/shared-pack.py unpack "$shared" "$root/build/shared"
  shared=$root/build/shared
  for f in models/*.gguf; do  # the demo model the tree carries is a shared file too
    [ -e "$shared/models/gguf/$(basename "$f")" ] || cp "$f" "$shared/models/gguf/"
  done
fi

if [ -n "${FRUGAL_BIN_DIR:-}" ]; then
  export LD_LIBRARY_PATH=$FRUGAL_BIN_DIR/../lib:${LD_LIBRARY_PATH:-}
  frugal=$FRUGAL_BIN_DIR/frugal
  tests=$FRUGAL_BIN_DIR/frugal_gpu_tests
else
  echo "== build frugal ($(nproc) cores)"
  cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DFRUGAL_CUDA=ON -DFRUGAL_SHARED_DIR="$shared" >/dev/null
  cmake --build build/gpu -j "$(nproc)" --target frugal frugal_gpu_tests
  frugal=$root/build/gpu/bin/frugal
  tests=$root/build/gpu/tests/gpu/frugal_gpu_tests
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# llama.cpp: configure and build llama-bench in the background.
llama_pid=
if stage llama && [ -n "${LLAMA_SRC:-}" ] && [ ! -x "$llama_bench" ]; then
  echo "== llama.cpp build started (log: $llama_build/build.log)"
  mkdir -p "$llama_build"
  (
    set -e
    src=$LLAMA_SRC
    if [ -f "$LLAMA_SRC" ]; then
      src=$llama_build/src
      mkdir -p "$src" && tar -xJf "$LLAMA_SRC" -C "$src"
      # A tarball of one top-level folder: build that folder.
      [ -f "$src/CMakeLists.txt" ] || src=$(dirname "$(ls "$src"/*/CMakeLists.txt | head -1)")
    fi
    gen=()
    command -v ninja >/dev/null && gen=(-G Ninja)
    cmake -S "$src" -B "$llama_build/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90-real -DLLAMA_CURL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF
    cmake --build "$llama_build/build" -j "$(nproc)" --target llama-bench
  ) >"$llama_build/build.log" 2>&1 &
  llama_pid=$!
fi

if stage tests; then
  echo "== gpu tests"
  FRUGAL_SHARED_DIR=$shared "$tests" --gtest_brief=1 ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER} || echo "GPU TESTS FAILED"
fi

[ -z "$vocab" ] && vocab=$(ls "$shared"/models/gguf/*.gguf 2>/dev/null | head -1)
if stage synth; then
  [ -n "$vocab" ] || { echo "no GGUF for the vocabulary"; exit 1; }
  for t in "${types[@]}"; do
    f=$models/llama3-8b-$t.gguf
    [ -f "$f" ] && continue
    echo "== synth $t"
    "$frugal" synth --shape llama3-8b --type "$t" --vocab-from "$vocab" -o "$f.part" >/dev/null && mv "$f.part" "$f"
  done
fi

if [ -n "$llama_pid" ]; then
  echo "== waiting for the llama.cpp build"
  if wait "$llama_pid"; then echo "llama.cpp built"; else echo "LLAMA.CPP BUILD FAILED"; tail -20 "$llama_build/build.log"; fi
fi
stage bench || exit 0

stamp=$(date -u +%Y-%m-%d)
out=bench/results/gpu-$stamp-run.md
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo unknown)
has_llama=0
[ -x "$llama_bench" ] && has_llama=1
{
  echo "# frugal and llama.cpp on $gpu_name ($stamp)"
  echo
  echo "Command: \`bench/gpu/run-on-device.sh\`: per file, \`frugal bench --device cuda -p 512 -n 128 -r $reps\` then"
  echo "\`llama-bench -ngl 99 -p 512 -n 128 -r $reps\` (built in the same call from the carried snapshot)."
  echo "Models: \`frugal synth --shape llama3-8b --type TYPE --vocab-from $(basename "$vocab")\`."
  echo "Roofline: $membw GB/s ÷ weight bytes streamed per token. Medians over the reps, min–max in brackets."
  echo
  echo "| type | frugal pp512 | llama.cpp pp512 | pp ratio | frugal tg128 | % roofline | llama.cpp tg128 | tg ratio |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
} >"$out"

for t in "${types[@]}"; do
  f=$models/llama3-8b-$t.gguf
  [ -f "$f" ] || { echo "missing $f"; continue; }
  echo "== bench $t"
  fj=$("$frugal" bench -m "$f" --device cuda -p 512 -n 128 -r "$reps" --membw-gbps "$membw" --json)
  echo "$fj"
  lj='[]'
  if [ $has_llama = 1 ]; then
    lj=$("$llama_bench" -m "$f" -ngl 99 -p 512 -n 128 -r "$reps" -o json 2>/dev/null || echo '[]')
    echo "$lj" | python3 -c 'import json,sys; [print(r["n_prompt"], r["n_gen"], r["avg_ts"], r.get("samples_ts")) for r in json.load(sys.stdin)]' || true
  fi
  python3 - "$t" "$fj" "$lj" >>"$out" <<'PY'
import json, statistics, sys
t, fr, lr = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
def frugal(prefix):
    r = next((r for r in fr if r["test"].startswith(prefix)), None)
    return r and (r["tok_s_median"], r["tok_s_min"], r["tok_s_max"], r.get("roofline_frac", 0))
def llama(pp):
    r = next((r for r in lr if (r["n_prompt"] > 0) == pp and (r["n_gen"] > 0) != pp), None)
    if not r: return None
    s = r.get("samples_ts") or [r["avg_ts"]]
    return (statistics.median(s), min(s), max(s))
def cell(v): return f"{v[0]:,.1f} [{v[1]:,.1f}–{v[2]:,.1f}]" if v else "—"
def ratio(a, b): return f"{a[0] / b[0]:.2f}×" if a and b else "—"
fp, ft, lp, lt = frugal("pp"), frugal("tg"), llama(True), llama(False)
print(f"| {t} | {cell(fp)} | {cell(lp)} | {ratio(fp, lp)} | {cell(ft)} | {100 * ft[3]:.0f}% | {cell(lt)} | {ratio(ft, lt)} |")
PY
done

if [ "$parallel" -gt 0 ]; then
  for t in bf16 f16; do
    f=$models/llama3-8b-$t.gguf
    [ -f "$f" ] || continue
    echo "== batched $t x$parallel"
    bj=$("$frugal" bench -m "$f" --device cuda -p 0 -n 0 -r 2 --parallel "$parallel" --membw-gbps "$membw" --json)
    echo "$bj"
    python3 - "$t" "$bj" >>"$out" <<'PY'
import json, sys
t, r = sys.argv[1], json.loads(sys.argv[2])[0]
print(f"\nBatched ({t}, {r['test']}: {r['parallel']} requests at once through the scheduler, 128-token prompts, "
      f"128 outputs each): {r['tok_s_median']:,.0f} output tok/s over the whole run "
      f"[{r['tok_s_min']:,.0f}–{r['tok_s_max']:,.0f}], decode phase {r['decode_tok_s']:,.0f} tok/s "
      f"(weights streamed at {r['gbps']:,.0f} GB/s, {100 * r['roofline_frac']:.0f}% of the roofline).")
PY
    break
  done
fi
echo
cat "$out"
