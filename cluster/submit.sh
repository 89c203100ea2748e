#!/usr/bin/env bash
# Submit one raympl simulation to a Ray cluster; arguments go to `raympl simulate`.
#   RAY_ADDRESS=http://HEAD:8265 cluster/submit.sh --agents 200 --topology er --degree 6 --rounds 300
# Results are written under the job's working directory on the head node; pass --out to a shared
# path (e.g. /mnt/shared/runs/x) to keep them, or fetch them with `ray rsync-down`.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RAY_ADDRESS:=http://127.0.0.1:8265}"
export RAY_ADDRESS
exec ray job submit --address "$RAY_ADDRESS" --working-dir . --runtime-env cluster/runtime_env.yaml \
    ${RAYMPL_SUBMISSION_ID:+--submission-id "$RAYMPL_SUBMISSION_ID"} \
    -- python -m raympl.cli.main simulate --address auto "$@"
