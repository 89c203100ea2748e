#!/usr/bin/env bash
# How much a study gains from running its runs at once (docs/performance.md, "Many runs at once"): the same
# 8 small-CNN runs (MCE-PL and ind-mask, seeds 0-3, the `make simulate` setting, ROUNDS rounds) made three
# ways on this machine: one after another in process (one core), one after another on Ray (each run's two
# hosts on both cores), and as Ray Tune trials with --concurrent auto (in process, one core each). Then
# studies/throughput_report.py checks that the results agree and prints the wall times. Rerunning skips
# finished studies (delete OUT to measure again).
set -euo pipefail
RAYMPL=${RAYMPL:-.venv/bin/raympl}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/throughput}
ROUNDS=${ROUNDS:-50}
STUDY=(compare --algorithms mce-pl,ind-mask --model small-cnn --seeds 0,1,2,3 --classes 4 --agents 20
       --topology er --p 0.5 --retention 0.3 --rounds "$ROUNDS" --eval-every 10 --eval-samples 500)
timed() {  # $1 name, then the extra options
  local name=$1; shift
  [ -f "$OUT/$name/wall.txt" ] && return
  local start=$EPOCHREALTIME
  "$RAYMPL" "${STUDY[@]}" "$@" --out "$OUT/$name" > "$OUT/$name.log" 2>&1
  awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }' > "$OUT/$name/wall.txt"
}
mkdir -p "$OUT"
timed sequential-inprocess --executor inprocess
timed sequential-ray --executor ray
timed concurrent-auto --executor inprocess --concurrent auto
"$PYTHON" studies/throughput_report.py "$OUT"
