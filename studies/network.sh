#!/usr/bin/env bash
# The simulated network study (docs/network.md "Measured"): on the `make simulate` setting (small CNN,
# Fashion-MNIST, 20 agents, ER p = 0.5, c = 4, r = 0.3, paper preset), with raympl compare:
#   (a) time-to-accuracy of MCE-PL (raw and delta) against DSGD, Dis-PFL and LotteryDSGD over 1, 10, 100 Mbit/s
#   (b) MCE-PL against ind-mask with availability 1.0, 0.8 and 0.5 (bernoulli)
#   (c) a fixed ER graph against a fresh one of the same mean degree every round (MCE-PL and DSGD)
#   (d) 10 % stragglers 5x slower (20 against 100 GFLOP/s), MCE-PL with and without a 0.06 s deadline
# then tables and figures with studies/network_report.py. Rerunning skips finished runs.
# Override e.g. ROUNDS=50 SEEDS=0 AGENTS=6 OUT=runs/network-short; MODEL=alexnet runs only the cells of (a),
# with A_METHODS (default: all four) and DISPFL=0 to leave Dis-PFL out; BANDWIDTHS (Mbit/s, default "1 10 100");
# EVAL_EVERY, EVAL_SAMPLES (10, 500).
set -euo pipefail
RAYMPL=${RAYMPL:-.venv/bin/raympl}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/network}
ROUNDS=${ROUNDS:-100}
SEEDS=${SEEDS:-0,1}
MODEL=${MODEL:-small-cnn}
COMMON=(--model "$MODEL" --agents "${AGENTS:-20}" --classes 4 --retention 0.3 --rounds "$ROUNDS" --eval-every "${EVAL_EVERY:-10}"
        --eval-samples "${EVAL_SAMPLES:-500}" --executor "${EXECUTOR:-inprocess}")
ER=(--topology er --p 0.5)
for bw in ${BANDWIDTHS:-1 10 100}; do
  # Dis-PFL at lr 0.1: at its paper step size 0.001 it stays near chance for hundreds of rounds (docs/results.md)
  "$RAYMPL" compare "${COMMON[@]}" "${ER[@]}" --seeds 0 --set bandwidth=$bw \
    --algorithms "${A_METHODS:-mce-pl,mce-pl+delta,dsgd,lottery-dsgd}" --out "$OUT/a-$MODEL-bw$bw"
  [ "${DISPFL:-1}" = 0 ] || "$RAYMPL" compare "${COMMON[@]}" "${ER[@]}" --seeds 0 --set bandwidth=$bw --set lr=0.1 \
    --algorithms dis-pfl --out "$OUT/a-$MODEL-bw$bw-dispfl"
done
if [ "$MODEL" != small-cnn ]; then
  "$PYTHON" studies/network_report.py "$OUT" --figures "${FIGURES:-docs}"
  exit 0
fi
for availability in always bernoulli:0.8 bernoulli:0.5; do
  "$RAYMPL" compare "${COMMON[@]}" "${ER[@]}" --seeds "$SEEDS" --set availability=$availability \
    --algorithms mce-pl,ind-mask --out "$OUT/b-${availability/:/-}"
done
for schedule in static resample; do
  "$RAYMPL" compare "${COMMON[@]}" --topology er --set degree=4 --seeds "$SEEDS" --set topology_schedule=$schedule \
    --algorithms mce-pl,dsgd --out "$OUT/c-$schedule"
done
for deadline in none 0.06; do
  extra=(); [ "$deadline" = none ] || extra=(--set round_deadline=$deadline)
  "$RAYMPL" compare "${COMMON[@]}" "${ER[@]}" --seeds "$SEEDS" --set device_speed=classes:20=0.1,100=0.9 \
    "${extra[@]}" --algorithms mce-pl --out "$OUT/d-deadline-$deadline"
done
"$PYTHON" studies/network_report.py "$OUT" --figures "${FIGURES:-docs}"
