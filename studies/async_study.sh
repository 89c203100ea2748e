#!/usr/bin/env bash
# Synchronous, semi-synchronous and asynchronous schedules on uneven devices (docs/network.md, "Sync or async"):
# on the `make simulate` setting (small CNN, Fashion-MNIST, 20 agents, ER p = 0.5, c = 4, r = 0.3), MCE-PL with
# the delta codec and DSGD, each under
#   (i)  stragglers: 10 % of the agents 5x slower (20 against 100 GFLOP/s)
#   (ii) lognormal device speeds, median 100 GFLOP/s, sigma 1
# as sync rounds, sync rounds with a DEADLINE (default 0.06 s), and --schedule async. Every agent makes the same
# number of local steps (ROUNDS) in every schedule, so the schedules compare the time the same work takes;
# sync runs are evaluated every 10 rounds, async ones every EVAL_S simulated seconds (default 0.5).
# Then tables and a figure with studies/async_report.py. Rerunning skips finished runs. The runs of
# docs/network.md part (e) are kept in studies/results/async-schedules.tar.xz (studies/keep_results.py restore).
# Override e.g. ROUNDS=20 SEEDS=0 AGENTS=6 OUT=runs/async-short.
set -euo pipefail
RAYMPL=${RAYMPL:-.venv/bin/raympl}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/async}
METHODS=${METHODS:-mce-pl+delta,dsgd}
ASYNC_METHODS=$(echo "$METHODS" | sed 's/,/@async,/g; s/$/@async/')
COMMON=(--model small-cnn --agents "${AGENTS:-20}" --topology er --p 0.5 --classes 4 --retention 0.3
        --rounds "${ROUNDS:-200}" --eval-every 10 --eval-samples "${EVAL_SAMPLES:-500}" --seeds "${SEEDS:-0,1,2}"
        --executor inprocess --concurrent "${CONCURRENT:-auto}")
declare -A SPEEDS=([stragglers]="classes:20=0.1,100=0.9" [lognormal]="lognormal:100:1")
for scenario in stragglers lognormal; do
  "$RAYMPL" compare "${COMMON[@]}" --set device_speed="${SPEEDS[$scenario]}" --set eval_every_s="${EVAL_S:-0.5}" \
    --algorithms "$METHODS,$ASYNC_METHODS" --out "$OUT/$scenario"
  "$RAYMPL" compare "${COMMON[@]}" --set device_speed="${SPEEDS[$scenario]}" \
    --set round_deadline="${DEADLINE:-0.06}" --algorithms "$METHODS" --out "$OUT/$scenario-deadline"
done
"$PYTHON" studies/async_report.py "$OUT" --figures "${FIGURES:-docs}"
