#!/usr/bin/env bash
# The demo: one appliance (ferryd) on this machine runs a VM with the memory
# guest and a second with the disk guest, shows their consoles, saves both to
# state files, restores them in new worker processes, and shows the guests
# continuing exactly where they were (heartbeat numbers without gap or repeat,
# self-checks clean); then checkpoints the disk VM and moves its storage (the
# checkpoint chain included) to another directory while the guest writes;
# finally starts a second appliance (127.0.0.2, its own storage root) and
# moves both running VMs to it live, disks and checkpoint chain included
# (`ferry move-vm --include-storage`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release >/dev/null

bin=$PWD/build/release/bin
work=$(mktemp -d /tmp/ferry-demo.XXXXXX)
ferryd_pid=
ferryd2_pid=
cleanup() {
  if [[ -n $ferryd_pid ]]; then
    "$bin/ferry" vm stop mem >/dev/null 2>&1 || true
    "$bin/ferry" vm stop disk >/dev/null 2>&1 || true
    kill "$ferryd_pid" 2>/dev/null || true
    wait "$ferryd_pid" 2>/dev/null || true
  fi
  if [[ -n $ferryd2_pid ]]; then
    "$bin/ferry" --socket "$work/host2/run/ferryd.sock" vm stop mem >/dev/null 2>&1 || true
    "$bin/ferry" --socket "$work/host2/run/ferryd.sock" vm stop disk >/dev/null 2>&1 || true
    kill "$ferryd2_pid" 2>/dev/null || true
    wait "$ferryd2_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
# A free TCP port on an address (for the appliances' migration listeners).
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
port1=$(free_port 127.0.0.1)
port2=$(free_port 127.0.0.2)
trap cleanup EXIT

# Two appliances, each with its own TLS identity (made by `ferryd --init`, as
# an install does), each pinning the other's certificate fingerprint: every
# connection between them is TLS 1.3, mutually authenticated.
mkdir -p "$work/host2"
cat >"$work/host.toml" <<TOML
storage_root = "$work/root"
api_socket = "$work/run/ferryd.sock"
listen_addresses = ["127.0.0.1:$port1"]
[migration]
outgoing_enabled = true
incoming_enabled = true
incoming_directories = ["$work"]
TOML
cat >"$work/host2/host.toml" <<TOML
storage_root = "$work/host2/root"
api_socket = "$work/host2/run/ferryd.sock"
listen_addresses = ["127.0.0.2:$port2"]
[migration]
incoming_enabled = true
outgoing_enabled = true
incoming_directories = ["$work/host2/vms"]
TOML
fingerprint1=$("$bin/ferryd" --init --config "$work/host.toml" | awk '/^fingerprint/ {print $2}')
fingerprint2=$("$bin/ferryd" --init --config "$work/host2/host.toml" | awk '/^fingerprint/ {print $2}')
printf '[tls]\ntrusted_fingerprints = ["%s"]\n' "$fingerprint2" >>"$work/host.toml"
printf '[tls]\ntrusted_fingerprints = ["%s"]\n' "$fingerprint1" >>"$work/host2/host.toml"
export FERRY_SOCKET=$work/run/ferryd.sock
"$bin/ferryd" --config "$work/host.toml" >"$work/ferryd.log" 2>&1 &
ferryd_pid=$!
for _ in $(seq 100); do [[ -S $FERRY_SOCKET ]] && break; sleep 0.1; done
[[ -S $FERRY_SOCKET ]] || { echo "demo: ferryd did not start:"; cat "$work/ferryd.log"; exit 1; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ferry() { echo "\$ ferry $*"; "$bin/ferry" "$@"; }
last_lines() { "$bin/ferry" console "$1" | grep -E "$2" | tail -n "$3"; }

truncate -s 64M "$work/disk.raw"
step "create two VMs: a memory guest and a disk guest"
ferry vm create mem --guest memory --memory 512M --vcpus 2 --cmdline "ws_mib=128 rate=50000 hb_ms=100"
ferry vm create disk --guest disk --memory 64M --disk "$work/disk.raw" --cmdline "blocks=4096 hb_ms=100"
ferry vm start mem
ferry vm start disk
sleep 2
ferry vm list
step "their consoles"
last_lines mem '^HB' 3
last_lines disk '^DISK' 3

step "save both (state files, workers exit)"
t0=$(date +%s.%N)
ferry vm save mem
ferry vm save disk
t1=$(date +%s.%N)
ferry vm list
hb_saved=$(last_lines mem '^HB' 1 | awk '{print $2}')
disk_saved=$(last_lines disk '^DISK' 1 | awk '{print $2}')
mem_state_mib=$(( $(stat -c %s "$work"/root/vms/mem/saved.fvs) >> 20 ))
echo "state file of mem: ${mem_state_mib} MiB for 512 MiB of RAM (zero pages are not stored)"

step "restore both in new worker processes"
ferry vm restore mem
ferry vm restore disk
t2=$(date +%s.%N)
sleep 2
step "the guests continue where they were"
"$bin/ferry" console mem | grep -E '^HB' | awk -v s="$hb_saved" '$2>=s-1 && $2<=s+2'
last_lines mem '^HB' 1
"$bin/ferry" console disk | grep -E '^DISK' | awk -v s="$disk_saved" '$2>=s-1 && $2<=s+2'
last_lines disk '^DISK' 1

# The heartbeat sequence must have no gap or repeat, and no self-check failed.
"$bin/ferry" console mem | awk '/^HB/ { if (prev != "" && $2 != prev + 1) { print "demo: heartbeat gap/repeat: " prev " -> " $2; bad=1 } prev=$2 }
  /MISMATCH/ { print "demo: " $0; bad=1 } END { exit bad }'
"$bin/ferry" console disk | awk '/^DISK / { if (prev != "" && $2 != prev + 1) { print "demo: heartbeat gap/repeat: " prev " -> " $2; bad=1 } prev=$2 }
  /MISMATCH/ { print "demo: " $0; bad=1 } END { exit bad }'

step "checkpoint the disk VM while it runs, then move its storage live"
ferry vm checkpoint create disk cp1
mkdir -p "$work/volume2"
t3=$(date +%s.%N)
ferry move-storage disk --destination-storage-path "$work/volume2"
t4=$(date +%s.%N)
ferry vm show disk | grep -Ei 'disk|path' || true
ls -l "$work/volume2"
"$bin/ferry" console disk | grep -E 'DISK-MISMATCH|errors=[1-9]' && { echo "demo: disk guest saw an error"; exit 1; }
last_lines disk '^DISK' 1

step "what happened"
printf 'live storage move of the disk VM (checkpoint chain included): %.2f s; guest kept writing, no errors\n' \
  "$(awk -v a="$t3" -v b="$t4" "BEGIN{print b-a}")"
printf 'memory guest: %s MiB state file; saved at heartbeat %s, continued with heartbeat %s in a new worker\n' \
  "$mem_state_mib" "$hb_saved" "$((hb_saved + 1))"
printf 'disk guest:   saved at heartbeat %s, continued with heartbeat %s; every block it re-read matched\n' \
  "$disk_saved" "$((disk_saved + 1))"
printf 'save of both VMs: %.2f s, restore of both: %.2f s; heartbeats continuous, guest self-checks clean\n' \
  "$(awk -v a="$t0" -v b="$t1" "BEGIN{print b-a}")" "$(awk -v a="$t1" -v b="$t2" "BEGIN{print b-a}")"

step "live moves to a second appliance (127.0.0.2, its own storage): memory, disks and checkpoint chain"
"$bin/ferryd" --config "$work/host2/host.toml" >"$work/host2/ferryd.log" 2>&1 &
ferryd2_pid=$!
for _ in $(seq 100); do [[ -S $work/host2/run/ferryd.sock ]] && break; sleep 0.1; done
[[ -S $work/host2/run/ferryd.sock ]] || { echo "demo: second ferryd did not start:"; cat "$work/host2/ferryd.log"; exit 1; }
host2() { echo "\$ ferry --socket host2 $*"; "$bin/ferry" --socket "$work/host2/run/ferryd.sock" "$@"; }
ferry host certificate show
host2 host certificate show
# The guest's own view of the move: follow its console on this host until it
# leaves, then read the rest on the second host. A line cut by the pause
# continues there, so the two are joined without a separator.
"$bin/ferry" console mem --follow >"$work/mem-source.console" 2>/dev/null &
follow_pid=$!
sleep 0.5
ferry move-vm mem "127.0.0.2:$port2" --include-storage --destination-storage-path "$work/host2/vms"
sleep 1
kill "$follow_pid" 2>/dev/null || true
wait "$follow_pid" 2>/dev/null || true
ferry move-vm disk "127.0.0.2:$port2" --include-storage --destination-storage-path "$work/host2/vms"
ferry vm list
host2 vm list
host2 vm checkpoint list disk
ls -l "$work/host2/vms"
sleep 2
# On the second host the guests continue their sequences, still without errors.
for vm in mem disk; do
  "$bin/ferry" --socket "$work/host2/run/ferryd.sock" console "$vm" | grep -E 'MISMATCH|errors=[1-9]' &&
    { echo "demo: $vm saw an error after the live move"; exit 1; }
done
"$bin/ferry" --socket "$work/host2/run/ferryd.sock" console mem | grep -E '^HB' | tail -n 1
{ tail -c 3000 "$work/mem-source.console"; "$bin/ferry" --socket "$work/host2/run/ferryd.sock" console mem; } |
  awk '/^HB [0-9]+ t=[0-9]+ .*errors=/ { n = $2 + 0; t = substr($3, 3) + 0
         if (seen && n != prev + 1) breaks++
         if (seen && t - pt > max) max = t - pt
         prev = n; pt = t; seen = 1 }
       END { printf "memory guest across the move: heartbeats numbered without a gap or repeat (%d breaks); ", breaks
             printf "largest interval between two heartbeats %d ms of guest time (guest time continues across the pause)\n", max }'
"$bin/ferry" --socket "$work/host2/run/ferryd.sock" console disk | grep -E '^DISK' | tail -n 1
# Who the second appliance let in: the first, by its pinned certificate.
grep -ho 'incoming move .* for host [^:]*' "$work/host2/ferryd.log" | sed 's/^/host2 accepted: /'
echo "every connection between the appliances: TLS 1.3, both certificates pinned ($fingerprint1, $fingerprint2)"
host2 vm stop mem
host2 vm stop disk
