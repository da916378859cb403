#!/usr/bin/env bash
# Same-call A/B of decode settings on the GPU: for each round, each model and
# each setting (environment assignments; settings separated by ";"), runs
# `frugal bench --device cuda -p PROMPT -n 128 -r REPS` and prints one line:
# model, setting, round, median tok/s of every test [min-max].
#
#   bench/gpu/decode-ab.sh "FRUGAL_CUDA_PDL=0 FRUGAL_CUDA_FUSE=0;FRUGAL_CUDA_PDL=1" MODEL.gguf...
#
# Environment: FRUGAL (the binary, default build/main/bin/frugal), ROUNDS
# (default 2), REPS (default 3), PROMPT (default 0: decode only).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 'SETTING;SETTING...' MODEL..."; exit 2; }
frugal=${FRUGAL:-build/main/bin/frugal}
IFS=';' read -r -a settings <<<"$1"
shift
for round in $(seq 1 "${ROUNDS:-2}"); do
  for model in "$@"; do
    for setting in "${settings[@]}"; do
      # shellcheck disable=SC2086  # the setting is a list of assignments
      json=$(env $setting "$frugal" bench -m "$model" --device cuda -p "${PROMPT:-0}" -n 128 -r "${REPS:-3}" --json)
      python3 -c '
import json, sys
rows = json.loads(sys.argv[4])
cells = "  ".join("%s %.1f [%.1f-%.1f]" % (r["test"], r["tok_s_median"], r["tok_s_min"], r["tok_s_max"]) for r in rows)
print("%s | %s | round %s | %s" % (sys.argv[1], sys.argv[2], sys.argv[3], cells))' "$(basename "$model")" "$setting" "$round" "$json"
    done
  done
done
