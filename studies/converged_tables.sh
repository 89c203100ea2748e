#!/usr/bin/env bash
# Tables I and II of the paper at c = 4 under its learning-rate protocol, at a converged horizon
# (docs/results.md §5): small CNN, 20 agents, ER p = 0.5, Fashion-MNIST. Each method's learning rate is
# chosen from {1, 0.1, 0.01, 0.001} by validation accuracy (10 % of each agent's training data held out)
# on selection seed 1000, ASHA ending poor settings early; the table is then made on seeds 0, 1, 2 at the
# chosen rates. Runs are Ray Tune trials, one core each, two at a time on a 2-core machine.
#
# The horizon is a ladder of 200, 400, 800 rounds: studies/converged_tables_report.py says whether every
# method meets the convergence rule (mean accuracy over the last 10 % of rounds within 1 point of the
# previous 10 %); if one does not, rerun with the next ROUNDS: finished runs are extended, not redone, and
# the evaluation interval stays 10 rounds so that they can be. Where only some methods fall short, extend
# those alone: EXTEND=dis-pfl:paper-hetero ROUNDS=800 (see below). At 200 rounds the selection's FedAvg
# (lr 0.1) and DSGDProx (lr 1) runs were still rising by 1.1 and 2.3 points, so the default is 400. Stopping (Ctrl-C, SIGTERM, a lost
# machine) keeps every run's checkpoint; rerunning the same command continues. Where the disk is not kept
# between sittings, studies/keep_results.py keeps the finished runs' results in the repository. DSGD runs in bf16, the
# only method the precision study showed equivalent to fp32 (docs/performance.md), on CPUs with hardware bf16
# (AVX512_BF16 or AMX); elsewhere in fp32; the others in fp32.
set -euo pipefail
RAYMPL=${RAYMPL:-.venv/bin/raympl}
OUT=${OUT:-runs/converged-tables}
ROUNDS=${ROUNDS:-400}
RUN=(--model small-cnn --agents 20 --rounds "$ROUNDS" --eval-every 10 --eval-samples 500
     --set eval_final_full=false --executor inprocess --seeds 0,1,2 --classes 4 --topology er --p 0.5
     --val-fraction 0.1 --concurrent "${CONCURRENT:-auto}")
COMMON=("${RUN[@]}" --grid lr=1,0.1,0.01,0.001 --grid-seeds 1000 --early-stop asha)
TABLE1=fedavg,dsgd-prox,lottery-dsgd:0.3,lottery-dsgd:0.5,ind-mask:0.3,ind-mask:0.5,mce-pl:0.3,mce-pl:0.5
TABLE2=mce-pl:paper-hetero,ind-mask:paper-hetero,ind-weipru:paper-hetero,avr-weipru:paper-hetero
TABLE2=$TABLE2,par-weipru:paper-hetero,dis-pfl:paper-hetero
PYTHON=${PYTHON:-.venv/bin/python}
KEEP=${KEEP:-studies/results/converged-tables.tar.xz}
mkdir -p "$OUT"
# the results of earlier sittings, kept in the repository (a sitting's machine may not keep its disk): finished
# runs are read, not rerun; each sitting's end packs them again (commit $KEEP to keep them)
"$PYTHON" studies/keep_results.py restore "$OUT" "$KEEP"
# the study's machine time: each sitting's start and end (a run's own wall time covers its last segment only)
# the machine of each sitting too: float results differ between CPU kinds (docs/results.md §5)
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "start $(date -u +%FT%TZ) $(nproc) cores, $CPU" >> "$OUT/sittings.txt"
trap 'echo "end $(date -u +%FT%TZ)" >> "$OUT/sittings.txt"; "$PYTHON" studies/keep_results.py save "$OUT" "$KEEP"' EXIT
if [[ -n "${EXTEND:-}" ]]; then
  # EXTEND=method[,method] with ROUNDS beyond the table's horizon: only those methods' table runs go on, at
  # the rate chosen before (no new selection), each in $OUT/extended/<method>, seeded with a copy of its
  # fp32 runs (checkpoints included), so the finished tables stay as they are; the report reads these runs
  # in place of the shorter ones
  for method in ${EXTEND//,/ }; do
    read -r slug lr < <("$PYTHON" studies/converged_tables_report.py --chosen "$method" "$OUT") || true
    [[ -n "${lr:-}" ]] || { echo "converged_tables.sh: no chosen rate for EXTEND method '$method'" >&2; exit 2; }
    mkdir -p "$OUT/extended/$slug/runs"
    [[ -d "$OUT/extended/$slug/runs/$slug" ]] || cp -r "$OUT/fp32/runs/$slug" "$OUT/extended/$slug/runs/"
    "$RAYMPL" compare "${RUN[@]}" --set lr="$lr" --algorithms "$method" --out "$OUT/extended/$slug"
  done
  exit 0
fi
# one queue for both tables' fp32 methods, so that the trials keep both cores busy to the end
"$RAYMPL" compare "${COMMON[@]}" --algorithms "$TABLE1,$TABLE2" --out "$OUT/fp32"
# bf16 only where the CPU multiplies it in hardware (elsewhere it is refused, and fp32 is the fastest there)
if "$PYTHON" -c "import sys; from raympl.models.precision import fast_bf16_cpu; sys.exit(not fast_bf16_cpu())"; then
  "$RAYMPL" compare "${COMMON[@]}" --algorithms dsgd --set precision=bf16 --out "$OUT/bf16"
else
  echo "this CPU has no fast bf16: DSGD runs in fp32 here ($OUT/dsgd-fp32)"
  "$RAYMPL" compare "${COMMON[@]}" --algorithms dsgd --out "$OUT/dsgd-fp32"
fi
