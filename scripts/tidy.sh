#!/usr/bin/env bash
# Runs clang-tidy (the checked-in .clang-tidy) over the sources under the
# given paths, using the compile database of the clang preset:
#   scripts/tidy.sh storage transport/src/frame.cc
# Configures build/clang if it has no compile_commands.json yet; does not
# build. Not part of CI: findings are advice, to be fixed in files you touch.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  echo "usage: scripts/tidy.sh PATH..." >&2
  exit 2
fi
[ -f build/clang/compile_commands.json ] || cmake --preset clang >/dev/null
files=$(git ls-files -- "$@" | grep -E '\.cc$' || true)
if [ -z "$files" ]; then
  echo "no .cc files under $*" >&2
  exit 2
fi
# shellcheck disable=SC2086
run-clang-tidy-14 -quiet -p build/clang -j"$(nproc)" $files
