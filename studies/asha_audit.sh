#!/usr/bin/env bash
# Did ASHA change a choice of docs/results.md §5? The mask methods' grid points that ASHA ended early in the
# converged tables' selection are run to the full 400 rounds on the selection seed (1000), with the same
# validation split, and their validation scores set beside the score of the rate that was chosen
# (studies/asha_audit_report.py). Their scores are not monotone in the rounds, so an early end can drop a
# point that would have won. Needs the selection of studies/converged_tables.sh in $STUDY.
set -euo pipefail
RAYMPL=${RAYMPL:-.venv/bin/raympl}
PYTHON=${PYTHON:-.venv/bin/python}
STUDY=${STUDY:-runs/converged-tables}
OUT=${OUT:-$STUDY/asha-audit}
RUN=(--model small-cnn --agents 20 --rounds 400 --eval-every 10 --eval-samples 500 --set eval_final_full=false
     --executor inprocess --seeds 1000 --classes 4 --val-fraction 0.1 --concurrent "${CONCURRENT:-auto}")
# rate -> the mask methods ASHA ended at it (printed from the study's early-stops.json)
"$PYTHON" studies/asha_audit_report.py --ended "$STUDY" | while read -r lr methods; do
  graph=(--topology er --p 0.5)  # refused where no method of the line talks to neighbours (ind-mask alone)
  [[ "$methods" =~ mce-pl ]] || graph=()
  "$RAYMPL" compare "${RUN[@]}" "${graph[@]}" --set lr="$lr" --algorithms "$methods" --out "$OUT/lr=$lr" </dev/null
done
"$PYTHON" studies/asha_audit_report.py "$STUDY"
