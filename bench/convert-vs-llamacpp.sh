#!/usr/bin/env bash
# Converts the bundled Hugging Face models with `frugal convert`, loads each
# GGUF in llama.cpp's llama-server and compares its greedy continuation (token
# ids) of a few prompts with frugal's on the same file.
#
#   LLAMA_SERVER=/path/to/llama-server [FRUGAL=build/main/bin/frugal] \
#     [SHARED=../shared] [TYPES="auto q8_0"] bench/convert-vs-llamacpp.sh
#
# Prints one line per (model, type, prompt) and exits 1 on any mismatch. With
# quantized types both engines round activations to 8 bits in their own way,
# so a continuation may part at a near-tie; the gap printed tells.
set -euo pipefail
cd "$(dirname "$0")/.."
FRUGAL=${FRUGAL:-build/main/bin/frugal}
SHARED=${SHARED:-../shared}
TYPES=${TYPES:-auto q8_0}
N=${N:-24}
: "${LLAMA_SERVER:?set LLAMA_SERVER to a llama-server binary}"
work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

prompts=("Once upon a time" "def main():" "The capital of France is")
port=$((20000 + RANDOM % 20000))
fail=0
for model in tiny-llama-target tiny-qwen2-bpe; do
  for type in $TYPES; do
    gguf="$work/$model-$type.gguf"
    "$FRUGAL" convert "$SHARED/models/$model" -o "$gguf" --type "$type" >/dev/null 2>&1
    "$LLAMA_SERVER" -m "$gguf" --port "$port" -t 1 -c 512 >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
      curl -sf "localhost:$port/health" >/dev/null 2>&1 && break
      sleep 0.2
    done
    for p in "${prompts[@]}"; do
      body=$(printf '{"prompt":%s,"n_predict":%d,"temperature":0,"top_k":1,"n_probs":2,"return_tokens":true,"cache_prompt":false}' \
        "$(printf '%s' "$p" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')" "$N")
      curl -sf "localhost:$port/completion" -d "$body" >"$work/theirs.json"
      "$FRUGAL" run -m "$gguf" -p "$p" -n "$N" --temp 0 --output ids -t 1 2>/dev/null >"$work/ours.txt"
      # Same when equal (llama.cpp also returns the end-of-sequence token it
      # stopped at); else the first differing position and llama.cpp's
      # top-1/top-2 log-probability gap there (small: a near-tie).
      python3 - "$work/theirs.json" "$work/ours.txt" "$model" "$type" "$p" <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
theirs = d["tokens"]
if d.get("stop_type") == "eos" and theirs:
    theirs = theirs[:-1]
ours = [int(t) for t in open(sys.argv[2]).read().split()]
label = "%-18s %-5s %-28s" % (sys.argv[3], sys.argv[4], '"%s"' % sys.argv[5])
if ours == theirs:
    print(label, "same (%d tokens)" % len(ours))
    sys.exit(0)
i = next((k for k in range(min(len(ours), len(theirs))) if ours[k] != theirs[k]), min(len(ours), len(theirs)))
gap = None
probs = d.get("completion_probabilities", [])
if i < len(probs) and len(probs[i].get("top_logprobs", [])) >= 2:
    tl = probs[i]["top_logprobs"]
    gap = tl[0]["logprob"] - tl[1]["logprob"]
print(label, "differ at token %d%s" % (i, "" if gap is None else " (llama.cpp top-2 gap %.3f)" % gap))
print("  frugal:   ", " ".join(map(str, ours)))
print("  llama.cpp:", " ".join(map(str, theirs)))
sys.exit(1)
PY
    done
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
  done
done
exit $fail
