#!/usr/bin/env bash
# The prepared GPU benchmark: one call, at most 8 minutes on one GPU; writes results.json and
# results.md into OUT (default gpu-results). On a machine without a GPU it runs the tiny sizes on the
# CPU, which is what CI does so that the script cannot rot. See benchmarks/gpu.py for what it measures.
#   bash benchmarks/gpu.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${1:-gpu-results}
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  SIZE=full
else
  SIZE=tiny
fi
exec "$PY" benchmarks/gpu.py --out "$OUT" --size "$SIZE"
