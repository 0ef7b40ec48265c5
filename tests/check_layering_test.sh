#!/usr/bin/env bash
# Proves that check_layering.sh fails on an arrow against the order: copies
# the real modules to a temporary tree, checks that it passes, then adds one
# wrong include at a time and checks that each is refused and named.
set -euo pipefail
src=${1:-$(dirname "$0")/..}
check=$(cd "$(dirname "$0")" && pwd)/check_layering.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_layering_test: $*"; exit 1; }

copy_tree() {
  rm -rf "$tmp/tree"
  mkdir -p "$tmp/tree"
  for m in base config storage transport vm appliance; do cp -r "$src/$m" "$tmp/tree/$m"; done
}

copy_tree
"$check" "$tmp/tree" >/dev/null || fail "the unchanged tree does not pass"

# file to change | include to add | words the report must contain
cases=(
  "appliance/cli/src/cli_args.cc|daemon/vm_json.h|appliance/cli/ must not include daemon/"
  "appliance/daemon/src/vm_service.cc|vm/machine.h|appliance/daemon/ must not include vm/"
  "appliance/daemon/src/peer_service.cc|engine/live_move_destination.h|appliance/daemon/ must not include engine/"
  "appliance/protocol/src/move_protocol.cc|transport/frame.h|appliance/protocol/ must not include transport/"
  "appliance/engine/src/stream_pool.h|daemon/vm_service.h|appliance/engine/ must not include daemon/"
  "vm/src/machine.cc|transport/tcp.h|vm/ must not include transport/"
  "storage/src/qcow2_disk.cc|vm/machine.h|storage/ must not include vm/"
  "config/src/names.cc|storage/disk.h|config/ must not include storage/"
)
for c in "${cases[@]}"; do
  IFS='|' read -r file include words <<<"$c"
  [[ -f $tmp/tree/$file ]] || fail "$file is gone: update this test"
  copy_tree
  printf '#include "%s"\n' "$include" >>"$tmp/tree/$file"
  if out=$("$check" "$tmp/tree"); then fail "$file including $include passed"; fi
  grep -qF "$words" <<<"$out" || fail "the report for $file including $include does not say '$words': $out"
  grep -qF "$file" <<<"$out" || fail "the report does not name $file: $out"
done
echo "check_layering_test: ok (${#cases[@]} wrong includes refused)"
