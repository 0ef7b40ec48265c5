#!/usr/bin/env bash
# Fails if a module includes a header of a module it must not depend on.
# Modules are the top-level folders and the rooms of appliance/; each may
# include only itself and the modules listed for it below (docs/architecture.md
# draws the same arrows). CMake enforces the same for public headers, since a
# room's include directory reaches only the targets that link it; this also
# catches private headers and a relative include that sidesteps it.
#
# Usage: check_layering.sh [ROOT]   (exit 0: ok; 1: a violation, named)
set -euo pipefail
root=${1:-$(dirname "$0")/..}

# module path -> the modules it may include (besides itself and system headers)
declare -A allowed=(
  [base]=""
  [config]="base"
  [storage]="base config"
  [transport]="base config"
  [auth]="base"
  [vm]="base config storage"
  [appliance/common]="base"
  [appliance/protocol]="base"
  [appliance/ipc]="base common"
  [appliance/plan]="base config storage protocol"
  [appliance/peer]="base config transport auth protocol"
  [appliance/engine]="base config storage transport auth vm common protocol ipc plan peer"
  [appliance/worker]="base config storage transport auth vm common protocol ipc plan peer engine"
  [appliance/daemon]="base config storage transport auth common protocol ipc plan peer"
  [appliance/cli]="base config auth common"
)
# Every include prefix that names a module of this project.
modules="base config storage transport auth vm common protocol ipc plan peer engine worker daemon cli"

bad=0
for path in "${!allowed[@]}"; do
  [[ -d $root/$path ]] || continue
  self=${path##*/}
  for other in $modules; do
    [[ $other == "$self" ]] && continue
    [[ " ${allowed[$path]} " == *" $other "* ]] && continue
    hits=$(grep -rEn "#include [\"<]$other/" "$root/$path" --include='*.h' --include='*.cc' --include='*.c' || true)
    if [[ -n $hits ]]; then
      echo "layering: $path/ must not include $other/ (it may include: ${allowed[$path]:-nothing else}):"
      echo "$hits"
      bad=1
    fi
  done
done
[[ $bad -eq 0 ]] && echo "layering: ok"
exit $bad
