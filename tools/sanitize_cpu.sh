#!/usr/bin/env bash
# The CPU kernels under AddressSanitizer and UndefinedBehaviorSanitizer:
#
#   tools/sanitize_cpu.sh                 build, then run the default test subset
#   tools/sanitize_cpu.sh --durations=10  ... with these pytest options
#   tools/sanitize_cpu.sh tests/x.py -k y build, then run these pytest arguments
#
# Builds the extension (CPU only) with -fsanitize=address,undefined in its own
# build directory (build/asan) into its own copy of the package
# (build/asan/python/convbench), so python/convbench/_C*.so stays the normal
# build, then runs pytest with that copy first on PYTHONPATH. Python and torch
# are not built with ASan, so the runtime is preloaded (LD_PRELOAD), leak
# detection is off (Python leaks by design) and any UB report stops the run
# (-fno-sanitize-recover plus halt_on_error). Exit status: pytest's, or 1
# when a sanitizer reported anything (a report inside a test that still
# passed counts too: the log is searched).
#
# Needs cmake, pybind11 and a GCC or Clang with libasan/libubsan (ninja if found).
# Environment: CXX (the compiler whose runtime is preloaded; default c++),
# CONVBENCH_ASAN_DIR (build dir, default build/asan), PYTHON (default python3),
# CONVBENCH_TEST_ISAS (CPU variants the tests run; default the best one).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-python3}
build_dir=${CONVBENCH_ASAN_DIR:-build/asan}
case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac
pkg_root=$build_dir/python
cxx=${CXX:-c++}

# The default subset (what CI runs; about 5 minutes on 2 cores with the
# build): every engine and pass on the kernel tests' fixed and random shapes
# and on the wide drawn ones (every blocking path), max-pool, the registered
# ops (opcheck, gradcheck) and the error paths, on the best ISA build only
# (CONVBENCH_TEST_ISAS=generic,avx2,avx512 for all). Left out: the compile
# test (Inductor under ASan is slow and reaches no C++ the others do not)
# and the functional property tests (the same kernels, at ~10x the time).
# (Options alone, e.g. --durations=10, are added to the default subset.)
if [ $# -eq 0 ] || [[ $1 == -* ]]; then
  set -- tests/test_conv2d_cpu_kernels.py tests/test_engine_paths.py tests/test_max_pool2d.py \
    tests/test_avg_pool2d.py \
    tests/test_ops.py tests/test_errors.py -k "not compile" "$@"
fi

# A fresh copy of the Python sources (never the normal build's module).
rm -rf "$pkg_root/convbench"
mkdir -p "$pkg_root"
cp -r python/convbench "$pkg_root/convbench"
find "$pkg_root/convbench" \( -name '_C*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
# (vptr checks need RTTI across the module boundary that pybind11 hides.)
san="$san -fno-sanitize=vptr"
# -O1 (the sanitizers' usual level; -O3 builds of these templates take many
# minutes); build type Debug, so no -O3 from the Release flags.
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug -DCONVBENCH_OPT_LEVEL=-O1 \
  -DCONVBENCH_CUDA=OFF \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$san" \
  -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCONVBENCH_MODULE_DIR="$pkg_root/convbench" \
  -Dpybind11_DIR="$($python -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v "$python")" \
  >/dev/null
cmake --build "$build_dir" --parallel

asan_rt=$("$cxx" -print-file-name=libasan.so)
ubsan_rt=$("$cxx" -print-file-name=libubsan.so)
[ -f "$asan_rt" ] || { echo "sanitize_cpu.sh: no libasan.so for $cxx" >&2; exit 2; }
log=$build_dir/pytest.log
export LD_PRELOAD="$asan_rt${ubsan_rt:+:$ubsan_rt}"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1:print_summary=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$pkg_root${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${CONVBENCH_TEST_ISAS:-}" ]; then
  CONVBENCH_TEST_ISAS=$(cd /tmp && "$python" -c \
    "import convbench; print(convbench.backends.cpu_isa)")
  export CONVBENCH_TEST_ISAS
fi
echo "sanitize_cpu.sh: CPU ISA builds tested: $CONVBENCH_TEST_ISAS"
# The copy, not python/convbench or an installed convbench, must be imported.
(cd /tmp && "$python" -c "
import convbench, sys
want = sys.argv[1]
assert convbench._C.__file__.startswith(want), (convbench._C.__file__, want)
print('sanitized module:', convbench._C.__file__)" "$pkg_root")

set +e
"$python" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: AddressSanitizer|runtime error:" "$log"; then
  echo "sanitize_cpu.sh: sanitizer reports in $log" >&2
  exit 1
fi
exit "$status"
