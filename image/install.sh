#!/bin/sh
# Installs a built ferry tree onto this host (or into $DESTDIR for packaging):
#   /opt/ferry/bin/{ferryd,ferry-vmm,ferry}   ferryd finds ferry-vmm next to itself
#   /opt/ferry/guests/*.bin                   the default guest_dir (../guests)
#   /opt/ferry/share/doc/                     api.md, config.md
#   /usr/local/bin/ferry                      symlink for admins
#   /etc/ferry/host.toml                      only if absent: never overwrites settings
#   /etc/systemd/system/ferryd.service
#   /etc/pam.d/ferry                          credential-delegation mode (docs/credentials.md)
#   the host's TLS key and certificate        made by `ferryd --init` on a real install
# Usage: image/install.sh BUILD_DIR        (for example build/release)
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
build=$1
src=$(cd "$(dirname "$0")/.." && pwd)
dest=${DESTDIR:-}

for f in ferryd ferry-vmm ferry; do
  if [ ! -x "$build/bin/$f" ]; then
    echo "install.sh: $build/bin/$f is missing; build first (cmake --build $build)" >&2
    exit 1
  fi
done
for g in memory-guest disk-guest; do
  if [ ! -f "$build/guests/$g.bin" ]; then
    echo "install.sh: $build/guests/$g.bin is missing; build first (cmake --build $build)" >&2
    exit 1
  fi
done

install -d -m 0755 "$dest/opt/ferry/bin" "$dest/opt/ferry/guests" "$dest/opt/ferry/share/doc" \
  "$dest/usr/local/bin" "$dest/etc/systemd/system" "$dest/etc/pam.d"
install -d -m 0700 "$dest/etc/ferry"
# Replaced with a rename, so running workers keep their (old) executable.
for f in ferryd ferry-vmm ferry; do
  install -m 0755 "$build/bin/$f" "$dest/opt/ferry/bin/$f.new"
  mv -f "$dest/opt/ferry/bin/$f.new" "$dest/opt/ferry/bin/$f"
done
install -m 0644 "$build"/guests/*.bin "$dest/opt/ferry/guests/"
install -m 0644 "$src/docs/api.md" "$dest/opt/ferry/share/doc/api.md"
[ -f "$src/docs/config.md" ] && install -m 0644 "$src/docs/config.md" "$dest/opt/ferry/share/doc/config.md"
ln -sf /opt/ferry/bin/ferry "$dest/usr/local/bin/ferry"
if [ ! -e "$dest/etc/ferry/host.toml" ]; then
  install -m 0600 "$src/image/host.toml" "$dest/etc/ferry/host.toml"
fi
install -m 0644 "$src/image/ferryd.service" "$dest/etc/systemd/system/ferryd.service"
install -m 0644 "$src/scripts/pam.d/ferry" "$dest/etc/pam.d/ferry"
# The host's TLS identity, made once (an existing one is kept): peers pin the
# fingerprint printed here ([tls] trusted_fingerprints). A staged install
# ($DESTDIR) leaves it to ferryd's first start on the target.
if [ -z "$dest" ]; then
  /opt/ferry/bin/ferryd --init --config /etc/ferry/host.toml
fi

if [ -z "$dest" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "installed; start with: systemctl enable --now ferryd"
else
  echo "installed into ${dest:-/}"
fi
