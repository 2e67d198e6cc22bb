#!/bin/sh
# Stages an install (DESTDIR), checks the installed unit and its drop-in with systemd-analyze verify,
# then uninstalls and checks nothing is left. This build machine has no Xen, so the unit the drop-in
# requires (Debian's SysV-generated xen.service) is stubbed for the check.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
binary=${1:-$here/../src/Service/bin/Release/net10.0/linux-x64/publish/xen-backends}
DESTDIR=$stage "$here/install.sh" install "$binary"
check=$stage/check
mkdir -p "$check/xen-backends.service.d"
sed "s|/usr/sbin/xen-backends|$stage/usr/sbin/xen-backends|" "$stage/etc/systemd/system/xen-backends.service" > "$check/xen-backends.service"
cp "$stage/etc/systemd/system/xen-backends.service.d/xenstored.conf" "$check/xen-backends.service.d/"
printf '[Unit]\nDescription=stand-in for /etc/init.d/xen\n[Service]\nType=oneshot\nExecStart=/bin/true\n' > "$check/xen.service"
# verify exits 0 on unknown keys and other warnings: any output at all is a failure here.
out=$(SYSTEMD_UNIT_PATH="$check:" systemd-analyze verify "$check/xen-backends.service" 2>&1) || { echo "$out" >&2; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify complained:" >&2; echo "$out" >&2; exit 1; }
echo "systemd-analyze verify: ok"
rm -rf "$check"
DESTDIR=$stage "$here/install.sh" uninstall --purge
left=$(find "$stage" -type f | wc -l)
[ "$left" -eq 0 ] || { echo "uninstall left files behind:" >&2; find "$stage" -type f >&2; exit 1; }
echo "install/uninstall round trip: ok"
