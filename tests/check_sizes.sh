#!/usr/bin/env bash
# Fails if a production file in appliance/ is over 800 lines or a function in
# it is over 80 (issue 9: small files with one purpose, functions one screen
# long). Tests and benchmarks are not held to it.
set -euo pipefail
root=${1:-$(dirname "$0")/..}
here=$(cd "$(dirname "$0")" && pwd)
bad=0
while IFS= read -r -d '' f; do
  n=$(wc -l <"$f")
  if ((n > 800)); then
    echo "sizes: ${f#"$root"/} has $n lines (at most 800)"
    bad=1
  fi
done < <(find "$root/appliance" \( -name '*.cc' -o -name '*.h' \) -print0)
if ! python3 "$here/long_functions.py" --limit 80 "$root/appliance"; then
  echo "sizes: the functions above are over 80 lines"
  bad=1
fi
[[ $bad -eq 0 ]] && echo "sizes: ok"
exit $bad
