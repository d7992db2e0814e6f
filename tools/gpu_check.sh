#!/usr/bin/env bash
# GPU check: the first command a session with a lent GPU runs (no network there;
# it needs torch, pybind11, scikit-build-core, pytest and pytest-benchmark).
#
#   tools/gpu_check.sh --archive "$OUT/gpu-check.tar.gz" --commit <sha> [OUTDIR]
#   tools/gpu_check.sh --dry-run --archive build/gpu-check-dry-run.tar.gz   (no GPU: CI)
#
# Stages, in order of value, each guaranteed its share of one budget
# (--budget or CONVBENCH_GPU_BUDGET seconds, default 480; the shares sum to at
# most the whole, so the run fits by construction; tools/gpucheck/plan.py):
#   preflight      tools, modules, versions                           2%
#   build          CONVBENCH_CUDA=ON CUDAARCHS=${CUDAARCHS:-90}
#                  pip install --no-build-isolation --no-deps .         27%
#   installed      the installed package has CUDA for those archs      2%
#   layout-probe   mma/ldmatrix/cp.async registers vs the PTX ISA      6% (at most 30 s)
#   cuda-tests     pytest -m cuda on the files holding `cuda` tests     17%
#   memcheck       compute-sanitizer on our kernels only               8%
#   layer-table    every homework layer: ours vs cuDNN, float32,
#                  then TF32 and half                                   12%
#   racecheck, synccheck, initcheck                                     5%, 3%, 3%
#   tuning-sweep   every other CUDA tiling (the table's cells reused)  5%
#   bench          the CUDA benchmark rows, stage by stage              10%
# Every tool stops itself at its deadline; a stage cut by its hard limit, or
# that checked nothing (no test executed, a test skipped for want of a GPU, no
# sanitizer case run), fails. Results go to OUTDIR (default
# bench/results/gpu-<date>; dry run build/gpu-check-dry-run) and, with
# --archive FILE, into one .tar.gz rewritten atomically after every stage and
# every 15 s during one: a run killed at any point leaves what it finished and
# the partial results of the stage it was in. SUMMARY.md says what ran, what
# passed and what was not checked. Exit 0: all ok; 1: a stage failed;
# 3: incomplete (a stage partial, skipped or not reached).
#
# --commit SHA is recorded (and built into the module): the GPU machine's copy
# of the tree has no .git. CONVBENCH_COMMIT works too.
#
# --dry-run (CI; no GPU): the same build and command, the probe compiled and its
# PTX and inputs checked against the golden file, the CUDA tests collected as on
# the GPU machine and run (all skip, which the GPU verdict would fail), the
# sanitizer cases, timing cells and benchmark stages planned, and the archive
# checked, including after a simulated SIGKILL in the middle of a stage.
set -uo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case $arg in
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
  esac
done
# nvcc and compute-sanitizer are often off PATH: CMake and the stages find them there.
for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
  if [ -x "$d/nvcc" ] && ! command -v nvcc >/dev/null; then export PATH="$PATH:$d"; fi
done
export PIP_DISABLE_PIP_VERSION_CHECK=1
# tools/ only: the stages test the installed package, never the checkout's python/.
export PYTHONPATH="$PWD/tools"
exec "${PYTHON:-python3}" -m gpucheck.runner "$@"
