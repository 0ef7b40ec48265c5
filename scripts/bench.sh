#!/usr/bin/env bash
# Runs the benchmarks (release build). Each prints ferry's figure, the
# reference measured in the same run, and the ratio. The machine is shared and
# noisy: compare the two columns of one run, not numbers across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release >/dev/null
bench=build/release/tests/bench
echo "== save/restore of a running 1 GiB guest vs dd on the same filesystem"
"$bench/save_restore_bench"
echo "== storage: copy throughput vs cp and qemu-img convert; qcow2 4 KiB write IOPS vs qemu-img bench"
"$bench/storage_bench"
echo "== mirror job: guest-like writer with and without a mirror running"
"$bench/mirror_bench"
echo "== live storage move: disk guest write rate before, during and after (unpaced, then paced)"
"$bench/storage_move_bench"
"$bench/storage_move_bench" --max-rate 33554432
echo "== live move (1 GiB VM, 2 GiB disk): idle / memory / disk guests vs the loopback link and QEMU live migration"
"$bench/live_move_bench"
