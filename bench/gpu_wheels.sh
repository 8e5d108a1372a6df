#!/usr/bin/env bash
# Run HERE (where pip reaches a registry), once, before the device call: downloads the wheels the
# device lacks (bench/gpu_requirements.txt) for its Python 3.12 on x86-64 into .gpu/wheels, and
# writes the FashionMNIST 1-vs-5 images (the classes specs/fmnist_1v5.task uses, same order) into
# .gpu/data. .gpu is git-ignored; the device call carries it:
#     bash bench/gpu_wheels.sh && bash bench/gpu_check.sh --dry-run     # here
#     device run: command "bash bench/gpu_check.sh", carry [".gpu"], timeout_s 420
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .gpu/wheels
rm -f .gpu/wheels/*.whl            # one version of each: two stop the install there
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .gpu/wheels -r bench/gpu_requirements.txt
"$PY" bench/gpu_check.py --prepare-data --carry .gpu
du -sh .gpu/wheels .gpu/data
