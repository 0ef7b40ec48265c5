#!/usr/bin/env bash
# Runs the benchmarks (release build). Each prints ferry's figure, the
# reference measured in the same run, and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
build/release/tests/bench/save_restore_bench "$@"
build/release/tests/bench/storage_bench
