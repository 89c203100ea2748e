#!/usr/bin/env bash
# Demonstrate (1) SIGKILL of the driver + `--resume`, (2) SIGKILL of a host actor's process mid-run,
# each against an uninterrupted run of the same configuration. Prints the evidence.
set -uo pipefail
RAYMPL=${RAYMPL:-.venv/bin/raympl}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/reliability}
mkdir -p "$OUT"
ARGS=(--model small-cnn --agents 20 --rounds 40 --eval-every 5 --checkpoint-every 10 --seed 3)

rounds_done() { "$PY" -c "import pyarrow.parquet as pq,sys; print(max(pq.read_table(sys.argv[1]).column('round').to_pylist()))" "$1" 2>/dev/null || echo 0; }
compare() {
  "$PY" - "$1" "$2" <<'PY'
import sys, pyarrow.parquet as pq
a, b = (pq.read_table(f"{d}/metrics.parquet").to_pylist() for d in sys.argv[1:3])
key = lambda r: (r["round"], r["agent"], r["accuracy"], r["loss"], r["bits_sent"])
ma, mb = (pq.read_table(f"{d}/masks.parquet").to_pylist() for d in sys.argv[1:3])
print(f"  rows {len(a)} vs {len(b)}; rounds {sorted({r['round'] for r in b})}")
print(f"  metrics identical: {[key(r) for r in a] == [key(r) for r in b]}; final masks identical: {ma == mb}")
PY
}

PART=${PART:-1,2}
if [[ $PART == *1* ]]; then
echo "== 1. driver killed with SIGKILL, then --resume (in-process executor)"
rm -rf "$OUT/whole-a" "$OUT/killed"
"$RAYMPL" simulate "${ARGS[@]}" --executor inprocess --out "$OUT/whole-a" > /dev/null 2>&1
"$RAYMPL" simulate "${ARGS[@]}" --executor inprocess --out "$OUT/killed" > "$OUT/killed.log" 2>&1 &
pid=$!
while [ "$(rounds_done "$OUT/killed/rounds.parquet")" -lt 26 ]; do sleep 0.5; done
kill -9 $pid; wait $pid 2>/dev/null
echo "  killed the driver (pid $pid) after round $(rounds_done "$OUT/killed/rounds.parquet"); checkpoint: $(ls "$OUT/killed" | grep -c checkpoint.bin) file"
"$RAYMPL" simulate --resume "$OUT/killed" 2>&1 | tail -1
compare "$OUT/whole-a" "$OUT/killed"
fi

echo "== 2. a host actor's process killed with SIGKILL mid-run (Ray executor)"
rm -rf "$OUT/whole-b" "$OUT/actor"
"$RAYMPL" simulate "${ARGS[@]}" --out "$OUT/whole-b" > /dev/null 2>&1
"$RAYMPL" simulate "${ARGS[@]}" --out "$OUT/actor" > "$OUT/actor.log" 2>&1 &
pid=$!
while [ "$(rounds_done "$OUT/actor/rounds.parquet")" -lt 15 ]; do sleep 0.5; done
victim=$(pgrep -f "ray::AgentHost" | head -1)
echo "  killing host actor process $victim after round $(rounds_done "$OUT/actor/rounds.parquet")"
kill -9 "$victim"
while kill -0 $pid 2>/dev/null; do sleep 1; done
grep -h "warning" "$OUT/actor.log" | sed 's/^/  /'
tail -1 "$OUT/actor.log" | sed 's/^/  /'
compare "$OUT/whole-b" "$OUT/actor"
