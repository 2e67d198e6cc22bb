#!/bin/sh
# Installs or removes xen-backends in dom0:
#   systemd/install.sh install [path/to/published/xen-backends]   (default: the NativeAOT publish output)
#   systemd/install.sh uninstall [--purge]                           (--purge also removes /etc/xen-backends)
# DESTDIR=/some/root installs into a staging tree (packaging, tests) and skips systemctl and module checks.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
DESTDIR=${DESTDIR:-}
SBINDIR=${SBINDIR:-/usr/sbin}
UNITDIR=${UNITDIR:-/etc/systemd/system}
SCRIPTDIR=${SCRIPTDIR:-/etc/xen/scripts}

live() { [ -z "$DESTDIR" ]; }

install_all() {
  binary=${1:-$repo/src/Service/bin/Release/net10.0/linux-x64/publish/xen-backends}
  if [ ! -x "$binary" ]; then
    echo "install.sh: no executable at $binary; publish first:" >&2
    echo "  dotnet publish src/Service -r linux-x64 -c Release -p:PublishAot=true" >&2
    exit 1
  fi
  install -D -m 0755 "$binary" "$DESTDIR$SBINDIR/xen-backends"
  sed "s|@SBINDIR@|$SBINDIR|g" "$here/xen-backends.service" > "$here/.unit.tmp"
  install -D -m 0644 "$here/.unit.tmp" "$DESTDIR$UNITDIR/xen-backends.service"
  rm -f "$here/.unit.tmp"
  # Require whatever starts xenstored here: upstream's xenstored.service, or on Debian the
  # SysV /etc/init.d/xen that systemd wraps as xen.service. Requiring a unit that does not exist
  # would make every start fail, so the choice is made on the machine.
  xenstored_unit=xen.service
  if live && systemctl cat xenstored.service >/dev/null 2>&1; then xenstored_unit=xenstored.service; fi
  mkdir -p "$DESTDIR$UNITDIR/xen-backends.service.d"
  printf '[Unit]\nRequires=%s\n' "$xenstored_unit" > "$DESTDIR$UNITDIR/xen-backends.service.d/xenstored.conf"
  install -D -m 0644 "$here/xen-backends-modprobe.conf" "$DESTDIR/etc/modprobe.d/xen-backends.conf"
  install -D -m 0755 "$here/block-xen-backends" "$DESTDIR$SCRIPTDIR/block-xen-backends"
  if [ ! -e "$DESTDIR/etc/xen-backends/config.json" ]; then
    install -D -m 0644 "$here/config.json" "$DESTDIR/etc/xen-backends/config.json"
  fi
  install -D -m 0644 "$repo/README.md" "$DESTDIR/usr/share/doc/xen-backends/README.md" 2>/dev/null || true
  if live; then
    for m in xen_blkback xen_netback; do
      if [ -d "/sys/module/$m" ]; then
        echo "install.sh: kernel module $m is loaded and will compete for devices: stop guests, then rmmod $m" >&2
      fi
    done
    systemctl daemon-reload
    systemctl enable xen-backends.service
    echo "installed; start with: systemctl start xen-backends"
  fi
}

uninstall_all() {
  if live; then systemctl disable --now xen-backends.service 2>/dev/null || true; fi
  rm -f "$DESTDIR$SBINDIR/xen-backends" "$DESTDIR$UNITDIR/xen-backends.service" \
        "$DESTDIR$UNITDIR/xen-backends.service.d/xenstored.conf" \
        "$DESTDIR/etc/modprobe.d/xen-backends.conf" "$DESTDIR$SCRIPTDIR/block-xen-backends"
  rmdir "$DESTDIR$UNITDIR/xen-backends.service.d" 2>/dev/null || true
  rm -rf "$DESTDIR/usr/share/doc/xen-backends"
  if [ "${1:-}" = "--purge" ]; then rm -rf "$DESTDIR/etc/xen-backends"; fi
  if live; then systemctl daemon-reload; fi
}

case "${1:-}" in
  install) shift; install_all "$@" ;;
  uninstall) shift; uninstall_all "$@" ;;
  *) echo "usage: $0 install [binary] | uninstall [--purge]" >&2; exit 1 ;;
esac
