#!/usr/bin/env bash
# The whole test suite: set-up, release build (warnings are errors), every
# test (unit, integration with real processes, short fuzz runs), then the unit
# tests again under ASan+UBSan. Prints ctest's summary lines.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== release build"
scripts/build.sh release
echo "== all tests (release)"
ctest --preset release --output-on-failure --timeout 600

echo "== sanitizer build (ASan+UBSan)"
scripts/build.sh asan
echo "== unit tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --preset asan -L unit --output-on-failure --timeout 600
