#!/bin/bash
# Builds the guest's base initramfs from the dom0 tree: busybox-static as the shell and tools,
# the two Xen frontends as modules, and fio + iperf3 with exactly the shared libraries they
# link (found with ldd inside the tree). Copying two binaries and their libraries keeps the
# guest at tens of MB; giving it the whole dom0 tree (~400 MB) would not fit a 512 MB guest.
# The guest's /init and scenario scripts are added per run (see make-overlay.sh).
# Usage: build-guest-base.sh DOM0ROOT KVER OUTFILE
set -euo pipefail
. "$(dirname "$0")/common.sh"
root=$1 kver=$2 out=$3
g=$(mktemp -d "$LAB_CACHE/tmp.guest.XXXXXX")
trap 'rm -rf "$g"' EXIT

mkdir -p "$g"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,lab,lib64,etc}
cp "$root/bin/busybox" "$g/bin/busybox"

# Copies a file from the dom0 tree to the same path in the guest, following symlinks.
copy_in() { mkdir -p "$g$(dirname "$1")"; cp -L "$root$1" "$g$1"; }
for bin in /usr/bin/fio /usr/bin/iperf3 /usr/sbin/ethtool; do
  copy_in "$bin"
  chroot "$root" ldd "$bin" | awk '$2=="=>" && $3 ~ /^\//{print $3} $1 ~ /^\//{print $1}' | sort -u | while read -r lib; do
    copy_in "$lib"
  done
done
# The guest must be able to actually start them, or a scenario would fail late and obscurely.
chroot "$g" /usr/bin/fio --version >/dev/null || lab_die "fio does not run from the guest tree"
chroot "$g" /usr/bin/iperf3 --version >/dev/null || lab_die "iperf3 does not run from the guest tree"
chroot "$g" /usr/sbin/ethtool --version >/dev/null || lab_die "ethtool does not run from the guest tree"

# The frontends and whatever modules.dep says they need, in load order, listed for /init.
: > "$g/lab/modules"
for m in xen-blkfront xen-netfront; do
  chroot "$root" modprobe -S "$kver" --show-depends "$m" | awk '$1=="insmod"{print $2}' | while read -r ko; do
    copy_in "$ko"
    grep -qxF "$ko" "$g/lab/modules" || echo "$ko" >> "$g/lab/modules"
  done
done
[ -s "$g/lab/modules" ] || lab_die "no frontend modules found"

(cd "$g" && find . -print0 | cpio -o -0 -H newc -R 0:0 --quiet) > "$out"
lab_log "guest base initramfs: $(du -h "$out" | cut -f1)"
