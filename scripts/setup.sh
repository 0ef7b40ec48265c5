#!/usr/bin/env bash
# Installs every Debian package that building, testing and the demo need.
# Idempotent and non-interactive; run as root on Debian 12.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config   # toolchain
  liburing-dev                                   # storage/: io_uring I/O engine
  libtomlplusplus-dev                            # config/: TOML parser
  nlohmann-json3-dev                             # appliance/: JSON for the API
  libmicrohttpd-dev                              # appliance/: ferryd's HTTP server
  libcurl4-openssl-dev                           # appliance/: ferry's HTTP client
  libgtest-dev libgmock-dev                      # tests/
  clang libclang-rt-14-dev                       # scripts/test.sh: -Wthread-safety build; libFuzzer targets
  clang-format-14 clang-tidy-14                  # .clang-format, .clang-tidy (scripts/tidy.sh)
  binutils                                       # objcopy for the guest programs
  zlib1g-dev libzstd-dev                         # storage/: compressed qcow2 clusters
  qemu-utils                                     # tests/: qemu-img as the reference peer for disk formats
  coreutils util-linux procps                    # dd, mount, pkill in tests and benchmarks
  iproute2                                       # tests/: ss -K cuts a live move's connections
  qemu-system-x86 busybox-static                 # live_move_bench: QEMU live migration as the reference
  linux-image-cloud-amd64                        # its TCG guest's kernel (/boot/vmlinuz-*), busybox initramfs
  libssl-dev openssl                             # transport/: TLS 1.3 on every peer connection; tests' CA
  libkrb5-dev krb5-user                          # auth/: Kerberos (MIT GSSAPI); kinit in tests
  libpam0g-dev                                   # auth/: local accounts (credential delegation)
  samba samba-ad-provision samba-ad-dc winbind   # tests/: a Samba AD DC as the KDC (constrained delegation)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -e /dev/kvm ]]; then
  echo "setup: warning: /dev/kvm is missing; VM tests and the demo need KVM" >&2
fi

# ferryd checks credentials delegated to it with the PAM service "ferry"
# (docs/credentials.md); the appliance image installs the same file.
if [[ $(id -u) -eq 0 ]] && ! cmp -s "$(dirname "$0")/pam.d/ferry" /etc/pam.d/ferry; then
  install -m 0644 "$(dirname "$0")/pam.d/ferry" /etc/pam.d/ferry
fi
