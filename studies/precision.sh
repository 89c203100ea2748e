#!/usr/bin/env bash
# Is bf16 the same science? fp32 and bf16 runs with the same seeds (docs/performance.md, "bf16 against
# fp32"): MCE-PL, ind-mask and DSGD with the small CNN (200 rounds, 5 seeds), MCE-PL and ind-mask with
# AlexNet (30 rounds, 3 seeds), on the `make simulate` setting (20 agents, ER p = 0.5, c = 4, r = 0.3,
# paper preset). The two precisions run side by side, each pinned to one core with one torch thread
# (in process), so their wall times are comparable. Needs a CPU with AVX512_BF16 or AMX-BF16.
# Rerunning skips finished runs. Override e.g. SMALL_ROUNDS=20 SMALL_SEEDS=0,1 ALEXNET_ROUNDS=0 AGENTS=6 OUT=runs/x.
set -euo pipefail
RAYMPL=${RAYMPL:-.venv/bin/raympl}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/precision}
SMALL_ROUNDS=${SMALL_ROUNDS:-200}
SMALL_SEEDS=${SMALL_SEEDS:-0,1,2,3,4}
ALEXNET_ROUNDS=${ALEXNET_ROUNDS:-30}
ALEXNET_SEEDS=${ALEXNET_SEEDS:-0,1,2}
COMMON=(--agents "${AGENTS:-20}" --topology er --p 0.5 --classes 4 --retention 0.3 --executor inprocess)

one_precision() {  # $1 precision, $2 core
  local cores=(taskset -c "$2")
  "${cores[@]}" "$RAYMPL" compare "${COMMON[@]}" --model small-cnn --algorithms mce-pl,ind-mask,dsgd \
    --rounds "$SMALL_ROUNDS" --eval-every 10 --eval-samples 500 --seeds "$SMALL_SEEDS" \
    --set precision="$1" --out "$OUT/$1/small-cnn"
  if [ "$ALEXNET_ROUNDS" != 0 ]; then
    "${cores[@]}" "$RAYMPL" compare "${COMMON[@]}" --model alexnet --algorithms mce-pl,ind-mask \
      --rounds "$ALEXNET_ROUNDS" --eval-every 3 --eval-samples 200 --seeds "$ALEXNET_SEEDS" \
      --set precision="$1" --out "$OUT/$1/alexnet"
  fi
}

mkdir -p "$(dirname "$OUT")"
second_core=$(( $(nproc) > 1 ? 1 : 0 ))
one_precision fp32 0 > "$OUT-fp32.log" 2>&1 &
fp32=$!
one_precision bf16 "$second_core" > "$OUT-bf16.log" 2>&1 || {
  pkill -P "$fp32" 2>/dev/null || true; kill "$fp32" 2>/dev/null || true
  echo "bf16 runs failed: see $OUT-bf16.log"; exit 1; }
wait "$fp32" || { echo "fp32 runs failed: see $OUT-fp32.log"; exit 1; }
"$PYTHON" studies/precision_report.py "$OUT"
