#!/usr/bin/env bash
# Fails if a top-level folder includes a header of a folder it must not depend
# on. The one-way order: base <- config <- storage, transport <- vm <- appliance.
# (CMake link rules enforce the same for public headers; this also catches a
# relative include that sidesteps them.)
set -euo pipefail
root=${1:-$(dirname "$0")/..}
declare -A forbidden=(
  [base]="config storage transport vm appliance"
  [config]="storage transport vm appliance"
  [storage]="transport vm appliance"
  [transport]="storage vm appliance"
  [vm]="transport appliance"
)
bad=0
for module in "${!forbidden[@]}"; do
  for other in ${forbidden[$module]}; do
    hits=$(grep -rEn "#include [\"<]($other)/" "$root/$module" --include='*.h' --include='*.cc' --include='*.c' || true)
    if [[ -n $hits ]]; then
      echo "layering: $module/ must not include $other/:"
      echo "$hits"
      bad=1
    fi
  done
done
[[ $bad -eq 0 ]] && echo "layering: ok"
exit $bad
