#!/usr/bin/env bash
# GPU check for a machine with a CUDA GPU and no network, run from the repo root:
#   tools/gpu_check.sh [OUTDIR]        (default bench/results/gpu-<date>)
# Builds and installs convbench (CUDAARCHS, default 90, limits the build to the
# GPU at hand), prints the machine's versions, runs the CUDA tests, runs
# compute-sanitizer memcheck and racecheck over a quick subset of them
# (CONVBENCH_SANITIZE=full for all of them, =0 to skip; CONVBENCH_SANITIZE_TIMEOUT
# seconds each, default 900), and prints the
# per-layer table of ours vs cuDNN (tools/gpu_layer_table.py). With
# CONVBENCH_BENCH=1 it also runs the CUDA rows of the pytest-benchmark suites
# and their report (several minutes more).
# Everything goes to stdout and to OUTDIR.
set -uo pipefail
cd "$(dirname "$0")/.."
outdir=${1:-bench/results/gpu-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$outdir"
exec > >(tee "$outdir/gpu_check.log") 2>&1
python=${PYTHON:-python3}
status=0
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || status=1
nvcc --version | tail -2
"$python" - <<'PY'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "torch CUDA", torch.version.cuda,
      "cuDNN", torch.backends.cudnn.version())
print("devices:", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
PY

step "build (CUDAARCHS=${CUDAARCHS:-90})"
export CUDAARCHS=${CUDAARCHS:-90}
start=$(date +%s)
if ! CONVBENCH_CUDA=ON "$python" -m pip install --no-build-isolation --no-deps -q . ; then
  echo "BUILD FAILED"; exit 1
fi
echo "build took $(( $(date +%s) - start )) s"
# Import from outside the checkout so the installed package is the one used.
(cd /tmp && "$python" -c "
import convbench, convbench._C as C
print('installed', convbench.__file__)
print('cuda compiled', C.cuda_compiled(), 'archs', C.cuda_architectures(),
      'runtime', C.cuda_runtime_version(), 'driver', C.cuda_driver_version(),
      'devices', C.cuda_device_count())
") | tee "$outdir/build_info.txt"

step "pytest -m cuda"
"$python" -m pytest -m cuda tests/ -q -p no:cacheprovider -rs --junitxml="$outdir/pytest_cuda.xml" \
  || status=1

sanitize=${CONVBENCH_SANITIZE:-quick}
if [ "$sanitize" != 0 ]; then
  if [ "$sanitize" = full ]; then
    subset=()
  else  # one case of each kernel family, float32 and half
    k="(float32_all_passes and (50x16x30 or 3x6x19)) or (half_types and 3x6x19 and float16)"
    k+=" or (bitwise and float32) or (max_pool2d_matches_torch and 3x5x13)"
    k+=" or nan_propagates or asymmetric or non_default_stream"
    subset=(-k "$k")
  fi
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
  if [ -z "$sanitizer" ]; then
    echo "compute-sanitizer not found: sanitizer runs skipped"; status=1; sanitize=0
  fi
fi
if [ "$sanitize" != 0 ]; then
  # Only our kernels (their names hold 'convbench'); torch's and cuDNN's run unchecked.
  filter=()
  if "$sanitizer" --help 2>/dev/null | grep -q -- "--kernel-name"; then
    filter=(--kernel-name kns=convbench)
  fi
  for tool in memcheck racecheck; do
    step "compute-sanitizer $tool ($sanitize) ${filter[*]}"
    timeout "${CONVBENCH_SANITIZE_TIMEOUT:-900}" \
      "$sanitizer" --tool "$tool" --error-exitcode 17 "${filter[@]}" \
      "$python" -m pytest -m cuda tests/test_cuda_ops.py -q -x -p no:cacheprovider "${subset[@]}" \
      2>&1 | tail -n 25 | tee "$outdir/sanitizer_$tool.txt"
    rc=${PIPESTATUS[0]}
    echo "compute-sanitizer $tool exit code $rc"
    [ "$rc" = 0 ] || status=1
  done
fi

step "layer table: ours vs cuDNN"
"$python" tools/gpu_layer_table.py "$outdir" || status=1

if [ "${CONVBENCH_BENCH:-0}" = 1 ]; then
  step "benchmarks: CUDA rows"
  "$python" -m pytest bench/ --benchmark-only -q -p no:cacheprovider -k cuda \
    --benchmark-json="$outdir/BENCH_cuda.json" || status=1
  "$python" -m convbench.report "$outdir/BENCH_cuda.json" --out "$outdir" || status=1
fi

step "done: status $status, results in $outdir"
exit $status
