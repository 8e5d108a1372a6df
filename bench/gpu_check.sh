#!/usr/bin/env bash
# ONE command for a lent GPU, run in the repository root there with .gpu carried (made here by
# bench/gpu_wheels.sh): installs the carried wheels and qtc offline, then bench/gpu_check.py
# checks the cuda backend's numbers, times the generator step and one FashionMNIST epoch, and
# writes gpu_check.json, gpu_check.md (ready for docs/results/gpu.md) and gpu_check.log under
# $OUT, in under 5 minutes: every step has its own time budget.
#     bash bench/gpu_check.sh              # on the device (device run: carry [".gpu"])
#     bash bench/gpu_check.sh --dry-run    # here: the plan, the wheel set, the tree that would
#                                          # travel, and the same steps on the cpu backend
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if [ "${1:-}" = "--dry-run" ]; then
  shift
  exec "$PY" bench/gpu_check.py --dry-run --carry .gpu "$@"
fi
: "${OUT:?set OUT to the folder for the results (the device machine sets it)}"
SITE=/tmp/qtc-site
export QTC_CACHE_DIR=/tmp/qtc-kernels CUPY_CACHE_DIR=/tmp/qtc-cupy   # shared by the steps
start=$SECONDS
{
  timeout 60 "$PY" -m pip install --no-index --find-links .gpu/wheels --no-deps --no-compile \
    --no-cache-dir --target "$SITE" -r bench/gpu_requirements.txt &&
  timeout 60 "$PY" -m pip install --no-index --no-deps --no-build-isolation --no-compile \
    --no-cache-dir --target "$SITE" .
} >"$OUT/install.log" 2>&1
status=$?
echo "install: exit $status after $((SECONDS - start)) s (log: install.log)"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" bench/gpu_check.py --carry .gpu --out "$OUT" --install "$status,$((SECONDS - start))" "$@"
