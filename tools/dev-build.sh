#!/usr/bin/env bash
# Incremental in-place build for development: the module lands in
# python/convbench/, so `PYTHONPATH=python pytest` uses it without installing.
# CONVBENCH_CUDA=OFF|ON|AUTO (default AUTO) chooses the CUDA part.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${CONVBENCH_BUILD_DIR:-build/dev}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCONVBENCH_CUDA="${CONVBENCH_CUDA:-AUTO}" \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build_dir"
