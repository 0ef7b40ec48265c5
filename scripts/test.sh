#!/usr/bin/env bash
# The whole test suite: set-up, release build (warnings are errors), every
# test (unit, integration with real processes, short fuzz runs), a clang
# compile that checks the lock annotations, then the unit tests again under
# ASan+UBSan. Prints ctest's summary lines.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== release build"
scripts/build.sh release
echo "== all tests (release)"
ctest --preset release --output-on-failure --timeout 600

echo "== clang build (-Wthread-safety, warnings are errors; compile only)"
# Libraries, programs, unit tests and fuzz targets; not the benchmarks or the
# integration harness, to keep the step to a few minutes.
# (Ninja's <dir>/all targets: everything CMake defines in that folder.)
cmake --preset clang >/dev/null
clang_dirs=(base config storage transport auth vm appliance tests/fuzz)
for d in tests/unit/*/; do
  if [[ -f $d/CMakeLists.txt ]]; then clang_dirs+=("${d%/}"); fi
done
cmake --build --preset clang -j"$(nproc)" --target "${clang_dirs[@]/%//all}"

echo "== sanitizer build (ASan+UBSan)"
scripts/build.sh asan
echo "== unit tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --preset asan -L unit --output-on-failure --timeout 600
