#!/usr/bin/env bash
# Submit one raympl simulation to a Ray cluster; arguments go to `raympl simulate`.
#   RAY_ADDRESS=http://127.0.0.1:8265 cluster/submit.sh --agents 200 --topology er --degree 6 --rounds 300
# The cluster's Jobs API needs its token (docs/security.md): RAY_AUTH_TOKEN, or the file RAY_AUTH_TOKEN_PATH,
# or ~/.ray/auth_token (what `ray get-auth-token --generate` made before `ray up`; on KubeRay, the Secret's
# auth_token, cluster/README.md). Results are written under the job's working directory on the head node;
# pass --out to a shared path (e.g. /mnt/shared/runs/x) to keep them, or fetch them with `ray rsync-down`.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RAY_ADDRESS:=http://127.0.0.1:8265}"
: "${RAY_AUTH_MODE:=token}"
export RAY_ADDRESS RAY_AUTH_MODE
if [ "$RAY_AUTH_MODE" != token ]; then
    echo "warning: RAY_AUTH_MODE=$RAY_AUTH_MODE: submitting without a token works only on a cluster that lets" \
         "anyone who reaches it run code (docs/security.md)" >&2
elif [ -z "${RAY_AUTH_TOKEN:-}" ] && [ ! -s "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ]; then
    echo "error: no Ray token: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, or put the cluster's token in" \
         "~/.ray/auth_token (cluster/README.md)" >&2
    exit 2
fi
exec ray job submit --address "$RAY_ADDRESS" --working-dir . --runtime-env cluster/runtime_env.yaml \
    ${RAYMPL_SUBMISSION_ID:+--submission-id "$RAYMPL_SUBMISSION_ID"} \
    -- python -m raympl.cli.main simulate --address auto "$@"
