#!/usr/bin/env bash
# The soak test (studies/soak.py): a 300-round small-CNN run on Ray, started with 200 rounds and extended to
# 300, interrupted by 5 SIGKILLs of its driver, 2 SIGKILLs of a host actor and one SIGTERM, must equal the
# uninterrupted 300-round run bit for bit. About an hour on a 2-core machine. Writes runs/soak/soak.md.
set -euo pipefail
PY=${PY:-.venv/bin/python}
exec "$PY" studies/soak.py --out "${OUT:-runs/soak}" "$@"
