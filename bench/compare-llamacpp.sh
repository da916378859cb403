#!/usr/bin/env bash
# Side-by-side CPU speed: frugal bench vs llama.cpp's llama-bench on the same
# GGUF files, same threads, in one run. The two engines alternate, one
# repetition each per round, so drift in machine load hits both alike; the
# table reports medians and min-max over the rounds.
#
#   bench/compare-llamacpp.sh LLAMA_BUILD_DIR MODEL.gguf [MODEL.gguf ...]
#
# Env: THREADS (default: frugal's default), ROUNDS (5), PP (512), TG (128),
#      FRUGAL (path to the frugal binary, default build/release/bin/frugal),
#      OUT (result file, default bench/results/<date>-cpu-vs-llamacpp.md),
#      FRUGAL_CPU_ISA (generic|avx2|avx512: force frugal's kernels, e.g. to
#      match a llama.cpp built for AVX2 only), NOTE (a line for the table,
#      e.g. how the llama.cpp build was made).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,12p "$0"; exit 2; }
llama_dir=$1; shift
llama_bench=$(find "$llama_dir" -name llama-bench -type f -perm -u+x | head -1)
[ -n "$llama_bench" ] || { echo "no llama-bench under $llama_dir" >&2; exit 1; }
frugal=${FRUGAL:-build/release/bin/frugal}
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-5}
pp=${PP:-512}
tg=${TG:-128}
out=${OUT:-bench/results/$(date +%Y-%m-%d)-cpu-vs-llamacpp.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

membw=$("$frugal" bench --membw -t "$threads" | awk -v t="$threads" '$0 ~ ", "t" thread" {print $(NF-1)}' | tail -1)
for model in "$@"; do
  tag=$(basename "$model" .gguf)
  for ((r = 1; r <= rounds; r++)); do
    "$llama_bench" -m "$model" -t "$threads" -p "$pp" -n "$tg" -r 1 -o json >"$tmp/$tag.llama.$r.json" 2>/dev/null
    "$frugal" bench -m "$model" -t "$threads" -p "$pp" -n "$tg" -r 1 --json --membw-gbps "$membw" \
      >"$tmp/$tag.frugal.$r.json"
  done
done

isa=${FRUGAL_CPU_ISA:-auto}
python3 - "$tmp" "$out" "$threads" "$rounds" "$membw" "$pp" "$tg" "$*" "$isa" "${NOTE:-}" <<'PY'
import json, glob, os, statistics, sys, datetime, platform, subprocess
tmp, out, threads, rounds, membw, pp, tg, models, isa, note = sys.argv[1:]
def cpu():
    for line in open('/proc/cpuinfo'):
        if line.startswith('model name'): return line.split(':', 1)[1].strip()
    return platform.processor()
rows = []
for model in models.split():
    tag = os.path.basename(model)[:-5]
    res = {}
    for eng in ('llama', 'frugal'):
        for f in sorted(glob.glob(f'{tmp}/{tag}.{eng}.*.json')):
            for o in json.load(open(f)):
                if eng == 'llama':
                    test = f"pp{o['n_prompt']}" if o['n_gen'] == 0 else f"tg{o['n_gen']}"
                    ts = o['avg_ts']
                else:
                    test, ts = o['test'], o['tok_s_median']
                    res.setdefault(('roof', test), []).append(o.get('roofline_frac', 0))
                res.setdefault((eng, test), []).append(ts)
    for test in (f'pp{pp}', f'tg{tg}'):
        l, f = res.get(('llama', test)), res.get(('frugal', test))
        if not l or not f: continue
        lm, fm = statistics.median(l), statistics.median(f)
        roof = statistics.median(res.get(('roof', test), [0]))
        rows.append((tag, test, fm, min(f), max(f), lm, min(l), max(l), fm / lm, roof))
lines = [f"# frugal vs llama.cpp, CPU ({datetime.date.today()})", "",
         f"machine: {cpu()}, {os.cpu_count()} CPUs; threads {threads}; {rounds} alternating rounds; "
         f"read bandwidth {membw} GB/s (frugal bench --membw)", "",
         f"frugal kernels: {isa}" + (f"; {note}" if note else ""), "",
         f"command: bench/compare-llamacpp.sh {models}", "",
         "| model | test | frugal tok/s (median, min-max) | llama.cpp tok/s (median, min-max) | ratio | frugal % of roofline |",
         "| --- | --- | ---: | ---: | ---: | ---: |"]
for tag, test, fm, fmin, fmax, lm, lmin, lmax, ratio, roof in rows:
    rf = f"{roof*100:.0f}%" if test.startswith('tg') else '-'
    lines.append(f"| {tag} | {test} | {fm:.2f} ({fmin:.2f}-{fmax:.2f}) | {lm:.2f} ({lmin:.2f}-{lmax:.2f}) | {ratio:.2f}x | {rf} |")
text = "\n".join(lines) + "\n"
open(out, 'w').write(text)
print(text)
PY
echo "written: $out" >&2
