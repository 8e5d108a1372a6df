#!/usr/bin/env bash
# Sets up qtc in ./.venv: torch + torchvision first (pinned wheels that lie on disk on the
# project's x86_64 machines; an unpinned torch can pull another multi-GB build), then qtc with
# its dev extras, then (as root, where apt exists) Debian's FashionMNIST for the image tasks.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! python -c "import torch, torchvision" 2>/dev/null; then
  case "$(uname -m)" in
    aarch64) pip install -q torch==2.9.1 torchvision==0.24.1 ;;
    *)       pip install -q torch==2.14.1 torchvision==0.29.1 ;;
  esac
fi
# strict editable mode: the installed package holds exactly what the wheel would (the folders
# listed in pyproject and their package data); `import compiler` from a checkout does not work
# and new files need a rerun of this script.
pip install -q -e ".[dev]" --config-settings editable_mode=strict
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
    || echo "setup.sh: could not install dataset-fashion-mnist (FashionMNIST tests will skip)" >&2
fi
echo "qtc is set up in $(pwd)/.venv"
