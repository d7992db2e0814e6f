#!/usr/bin/env bash
# GPU check, run from anywhere in the checkout on a machine with a CUDA GPU and
# no network (it needs torch, pybind11, scikit-build-core, pytest and
# pytest-benchmark; nothing else):
#
#   tools/gpu_check.sh [OUTDIR]            default bench/results/gpu-<date>
#   tools/gpu_check.sh --dry-run [OUTDIR]  no GPU needed; default build/gpu-check-dry-run
#
# Stages, in order of value, each with a time limit taken from one total budget
# (CONVBENCH_GPU_BUDGET seconds, default 480: fits 8 minutes on an H100/H200
# with 16 cores), so a run cut short still leaves the first results on disk:
#   preflight    tools, Python modules, versions (meta/preflight.json)
#   build        CONVBENCH_CUDA=ON CUDAARCHS=${CUDAARCHS:-90}
#                pip install --no-build-isolation --no-deps .
#   installed    the installed package has the CUDA kernels, for those architectures
#   cuda-tests   pytest -m cuda on the test files that hold `cuda` tests, by name
#                (pytest_cuda.xml)
#   layer-table  tools/gpu_layer_table.py: every homework conv layer and pass, ours vs
#                cuDNN, outputs checked (layers.md/.csv/.json, written per layer)
#   sanitizer-*  compute-sanitizer memcheck, racecheck, synccheck, initcheck with
#                PYTORCH_NO_CUDA_MEMORY_CACHING=1 on tools/gpu_sanitize_cases.py (one
#                case per kernel family, pass and dtype); full logs sanitizer_<tool>.log
#   tuning-sweep tools/gpu_tuning_sweep.py: every CUDA kernel configuration (tile
#                heights, split-K counts, fused channel chunks) on every homework
#                layer and pass, outputs checked (tuning.md/.json, written per layer)
#   bench-*      the CUDA benchmark rows in stages (bench/gpu_stages.py: float32
#                fwd+bwd and training steps first), one pytest and one JSON each
#                (bench/BENCH_<stage>.json), until the budget is spent; then
#                bench/results.md of all of them
# After every stage OUTDIR/SUMMARY.md is rewritten (device, driver, CUDA, torch,
# cuDNN, build time, test counts, sanitizer errors per tool, each stage's status,
# the per-layer table): commit OUTDIR as it is. A stage cut by its limit is
# recorded as timed out, never as a pass. Exit status 0 only if every stage
# passed (benchmark stages may be cut by the budget: that is their design).
#
# --dry-run (CI runs it; no GPU): the same build with the same command and
# architecture, installs it, collects the CUDA tests the way the GPU machine
# would (without hypothesis, matplotlib, ...) and says how many, runs the CUDA
# test command (every test skips), checks every tool, module and path the real
# run needs (compute-sanitizer and nvidia-smi may be absent: reported), runs
# the layer table's and the sanitizer cases' planning and the benchmark stage
# selection, and writes the SUMMARY.md skeleton. Fails if any of that fails.
#
# Environment: CONVBENCH_GPU_BUDGET (s, default 480; dry run 3600), CUDAARCHS (default 90),
# PYTHON (default python3), CONVBENCH_BENCH_ROW_BUDGET (s of timed rounds per
# benchmark row, default 0.05).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-python3}

usage() { sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
dry=0
outdir=
for arg in "$@"; do
  case $arg in
    --dry-run) dry=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *) if [ -n "$outdir" ]; then usage >&2; exit 2; fi; outdir=$arg ;;
  esac
done
if [ -z "$outdir" ]; then
  if [ "$dry" = 1 ]; then
    outdir=build/gpu-check-dry-run
  else
    outdir=bench/results/gpu-$(date -u +%Y-%m-%d)
    [ -e "$outdir" ] && outdir+=-$(date -u +%H%M)
  fi
fi
[ "$dry" = 1 ] && rm -rf "$outdir"
mkdir -p "$outdir/meta" "$outdir/logs" "$outdir/bench" || exit 2
outdir=$(cd "$outdir" && pwd)
exec > >(tee "$outdir/gpu_check.log") 2>&1

# The dry run checks, it does not race: a 2-core CI machine builds for minutes.
budget=${CONVBENCH_GPU_BUDGET:-$([ "$dry" = 1 ] && echo 3600 || echo 480)}
reserve=25        # seconds kept for the benchmark report and the summary
min_stage=10      # a stage with less time than this is skipped
deadline=$((SECONDS + budget))
export CUDAARCHS=${CUDAARCHS:-90}
# The build: exactly README's command. Only its surroundings are pinned: no
# index or version check (no network), all cores, and a build folder of its own,
# so a CMake cache from another build cannot keep other architectures.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 4)}
export SKBUILD_BUILD_DIR=build/gpu-check-sm${CUDAARCHS//[^0-9A-Za-z]/_}
# Test and time the installed package, never the checkout's python/ folder.
unset PYTHONPATH
for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
  if [ -x "$d/nvcc" ] && ! command -v nvcc >/dev/null; then export PATH="$PATH:$d"; fi
done

gcpy=("$python" "$root/tools/gpu_check.py")  # an array: `timeout` runs it (no functions)
gc() { "${gcpy[@]}" "$@"; }
summary() { gc summary "$outdir" $([ "$dry" = 1 ] && echo --dry-run) >/dev/null 2>&1 || true; }
step() { printf '\n=== %s (%s, %d s left)\n' "$*" "$(date -u +%H:%M:%S)" "$((deadline - SECONDS))"; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$outdir/stages.tsv"; }
pct() { echo $((budget * $1 / 100)); }
# limit CAP: CAP or what the budget has left (the limit run_stage will give).
limit() { local left=$((deadline - SECONDS - reserve)); echo $((left < $1 ? left : $1)); }

# run_stage NAME CAP LOG PATTERN CMD...: run CMD with a time limit of CAP
# seconds or what the budget has left, output to the console and LOG; record
# the stage (the last LOG line matching PATTERN, if any, is its detail).
# Returns CMD's status; 124/137 when cut by the limit, 99 when skipped.
run_stage() {
  local name=$1 cap=$2 log=$3 pattern=$4
  shift 4
  local lim
  lim=$(limit "$cap")
  if ((lim < min_stage)); then
    record "$name" skipped 0 "$lim" "no time left in the ${budget} s budget"
    summary
    return 99
  fi
  step "$name (limit $lim s)"
  local t0=$SECONDS rc status detail=""
  timeout -s INT -k 20 "$lim" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local dt=$((SECONDS - t0))
  if { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && ((dt >= lim - 1)); then
    status=timed-out
  elif [ "$rc" = 5 ] && [[ $name == bench-* ]]; then
    status=skipped  # pytest: no rows in this stage
  elif [ "$rc" = 0 ]; then
    status=ok
  else
    status=failed
  fi
  if [ -n "$pattern" ]; then
    detail=$(grep -E "$pattern" "$log" | tail -n 1 | tr '\t' ' ' | cut -c1-300)
  fi
  record "$name" "$status" "$dt" "$lim" "exit $rc${detail:+; $detail}"
  echo "--- $name: $status (exit $rc, $dt s)"
  summary
  return "$rc"
}

files=$(gc cuda-test-files)
if [ -z "$files" ]; then
  echo "gpu_check: no test file holds a \`cuda\` test: refusing to run pytest on nothing" >&2
  exit 2
fi
git_rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=$([ -n "$(git status --porcelain 2>/dev/null)" ] && echo true || echo false)
files_json=$(printf '"%s",' $files)
gc run-info "$outdir" --set "budget=$budget" "archs=$CUDAARCHS" "commit=$git_rev" \
  "dirty=$dirty" "dry_run=$([ "$dry" = 1 ] && echo true || echo false)" \
  "command=tools/gpu_check.sh $*" "cuda_test_files=[${files_json%,}]"
stages=(preflight build installed)
if [ "$dry" = 1 ]; then
  stages+=(collect-cuda-tests cuda-tests layer-table-plan sanitizer-cases-plan tuning-sweep-plan
           bench-plan)
else
  stages+=(cuda-tests layer-table sanitizer-memcheck sanitizer-racecheck sanitizer-synccheck
           sanitizer-initcheck tuning-sweep)
fi
planned=$(printf '"%s",' "${stages[@]}")
gc run-info "$outdir" --set "planned=[${planned%,}]"
echo "convbench GPU check$([ "$dry" = 1 ] && echo ' (dry run)'): budget $budget s, CUDAARCHS=$CUDAARCHS," \
  "commit $git_rev, results in $outdir"
echo "CUDA test files: $files"

mode=gpu; [ "$dry" = 1 ] && mode=dry
run_stage preflight 60 "$outdir/logs/preflight.log" "" "${gcpy[@]}" preflight "$outdir" --mode "$mode"

run_stage build "$(pct 60)" "$outdir/logs/build.log" "" \
  env CONVBENCH_CUDA=ON CUDAARCHS="$CUDAARCHS" "$python" -m pip install --no-build-isolation --no-deps .
if [ "$?" != 0 ]; then
  echo "BUILD FAILED or cut short: nothing else can run (logs/build.log)"
  gc run-info "$outdir" --set "elapsed=$SECONDS"
  summary
  exit 1
fi
# Import from outside the checkout, so the installed package is the one checked.
run_stage installed 60 "$outdir/logs/installed.log" "" \
  bash -c 'cd /tmp && exec "$0" "$1/tools/gpu_check.py" installed "$2" --archs "$3" --checkout "$1"' \
  "$python" "$root" "$outdir" "$CUDAARCHS"

pytest_cuda=("$python" -m pytest -m cuda $files -q -p no:cacheprovider -rfEs
             --junitxml="$outdir/pytest_cuda.xml")
if [ "$dry" = 1 ]; then
  run_stage collect-cuda-tests 300 "$outdir/logs/collect.log" "^collected" \
    "${gcpy[@]}" collect "$outdir" $files
  run_stage cuda-tests 300 "$outdir/logs/cuda-tests.log" "(passed|skipped|failed|error)" "${pytest_cuda[@]}"
  run_stage layer-table-plan 120 "$outdir/logs/layer-table-plan.log" "^gpu_layer_table plan" \
    "$python" tools/gpu_layer_table.py --list
  run_stage sanitizer-cases-plan 120 "$outdir/logs/sanitizer-cases-plan.log" "cases:" \
    "$python" tools/gpu_sanitize_cases.py --list
  run_stage tuning-sweep-plan 120 "$outdir/logs/tuning-sweep-plan.log" "^gpu_tuning_sweep plan" \
    "$python" tools/gpu_tuning_sweep.py --list
  run_stage bench-plan 300 "$outdir/logs/bench-plan.log" "^benchmark stages" \
    "${gcpy[@]}" bench-plan "$outdir"
else
  run_stage cuda-tests "$(pct 25)" "$outdir/logs/cuda-tests.log" "(passed|failed|error|skipped)" \
    "${pytest_cuda[@]}"

  lim=$(limit "$(pct 20)")
  run_stage layer-table "$lim" "$outdir/logs/layer-table.log" "geometric mean cuDNN / auto" \
    "$python" tools/gpu_layer_table.py "$outdir" --budget $((lim - 15))

  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
              /usr/local/cuda-*/bin/compute-sanitizer 2>/dev/null | head -n 1)
  for tool in memcheck racecheck synccheck initcheck; do
    if [ -z "$sanitizer" ]; then
      record "sanitizer-$tool" skipped 0 0 "compute-sanitizer not found"
      continue
    fi
    case $tool in memcheck|racecheck) lim=$(pct 12) ;; *) lim=$(pct 8) ;; esac
    lim=$(limit "$lim")
    # The cases stop starting new ones 20 s before the limit, so the tool
    # still prints its summary; the log keeps every report (no tail). Without
    # PyTorch's caching allocator every tensor is its own allocation, so an
    # overrun cannot land unseen inside another cached tensor.
    run_stage "sanitizer-$tool" "$lim" \
      "$outdir/sanitizer_$tool.log" "(ERROR SUMMARY|RACECHECK SUMMARY|SANITIZE CASES)" \
      env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --tool "$tool" --error-exitcode 17 \
      "$python" tools/gpu_sanitize_cases.py --budget $((lim > 30 ? lim - 20 : 10))
  done

  lim=$(limit "$(pct 12)")
  run_stage tuning-sweep "$lim" "$outdir/logs/tuning-sweep.log" "geometric mean auto / fastest" \
    "$python" tools/gpu_tuning_sweep.py "$outdir" --budget $((lim > 30 ? lim - 15 : 10))

  # Benchmarks: stage after stage until the budget is spent; the first stage
  # that runs measures the GPU's ceilings for all of them.
  roof=cuda
  for s in $("$python" bench/gpu_stages.py); do
    run_stage "bench-$s" "$budget" "$outdir/logs/bench-$s.log" "(passed|failed|error|skipped)" \
      "$python" -m pytest bench/ --benchmark-only -q -p no:cacheprovider --cb-stage "$s" \
      --cb-budget "${CONVBENCH_BENCH_ROW_BUDGET:-0.05}" --cb-roofline "$roof" \
      --benchmark-json="$outdir/bench/BENCH_$s.json"
    rc=$?
    [ "$rc" = 99 ] && break
    # (pytest-benchmark creates the file up front: only a non-empty one has rows)
    [ -s "$outdir/bench/BENCH_$s.json" ] && roof=none
  done
  jsons=()
  for j in "$outdir"/bench/BENCH_*.json; do
    [ -s "$j" ] && [ "$(basename "$j")" != BENCH_merged.json ] && jsons+=("$j")
  done
  if [ "${#jsons[@]}" -gt 0 ]; then
    step "benchmark report"
    plots=--no-plots
    "$python" -c "import matplotlib" 2>/dev/null && plots=
    timeout -s INT -k 5 $((reserve - 5)) "$python" -m convbench.report "${jsons[@]}" \
      --out "$outdir/bench" $plots > "$outdir/logs/bench-report.log" 2>&1 \
      || echo "benchmark report failed (logs/bench-report.log)"
  fi
fi

gc run-info "$outdir" --set "elapsed=$SECONDS"
# The last summary must work (the ones after each stage keep quiet about errors).
if ! gc summary "$outdir" $([ "$dry" = 1 ] && echo --dry-run) || [ ! -s "$outdir/SUMMARY.md" ]; then
  echo "gpu_check: the SUMMARY writer failed (results in $outdir)"
  exit 1
fi
echo
cat "$outdir/SUMMARY.md"
# Failed stages fail the check; a benchmark stage cut by the budget does not.
if awk -F'\t' '($2 == "failed" || ($2 == "timed-out" && $1 !~ /^bench-/)) {bad=1}
               END {exit !bad}' "$outdir/stages.tsv"; then
  echo "gpu_check: FAILED stages above (results in $outdir)"
  exit 1
fi
for s in "${stages[@]}"; do
  if ! grep -q "^$s	" "$outdir/stages.tsv"; then
    echo "gpu_check: stage $s did not run (results in $outdir)"
    exit 1
  fi
done
echo "gpu_check: ok (results in $outdir)"
exit 0
