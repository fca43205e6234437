#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py): CUDA correctness, then training, pseudo-mask and
# inference speed. Under 8 minutes on one H100/H200. `--cpu` runs it on the CPU with tiny sizes.
#
#   bash benchmarks/gpu_check.sh [--cpu] [--out DIR]
#
# One PASS / FAIL / SKIP line per check with its figures; DIR/gpu_check.json holds them all.
# Exit code: 0 when nothing failed, 1 when a check failed, 2 without a GPU and without --cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
exec "$python" benchmarks/gpu_check.py "$@"
