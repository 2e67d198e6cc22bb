#!/bin/bash
# Builds the cached dom0 root filesystem as an uncompressed newc cpio (dom0 boots it as its
# initramfs: no disk image, no partitioning, and uncompressed because decompressing under
# software CPU emulation is slow). Usage: build-dom0.sh BOOTDIR OUTFILE
# BOOTDIR is what fetch-boot.sh produced (kernel modules are taken from it).
set -euo pipefail
. "$(dirname "$0")/common.sh"
boot=$1 out=$2
kver=$(cat "$boot/kver")
work=$(mktemp -d "$LAB_CACHE/tmp.dom0.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

# What dom0 needs: the Xen toolstack and xenstored, tools the scenarios measure with, the
# libraries the project's service P/Invokes, ICU for a framework-dependent .NET publish, and
# busybox-static, which also becomes the guest's userland (build-guest-base.sh); ethtool for
# the guest to show the offloads its netfront negotiated.
pkgs=xen-utils-4.17,xenstore-utils,iproute2,kmod,udev,procps,fio,iperf3,bridge-utils
pkgs+=,libxengnttab1,libxenevtchn1,libicu72,ca-certificates,busybox-static,iputils-ping,ethtool
# QEMU's qdisk backend for the `compare` scenario: libxl spawns /usr/libexec/xen-qemu-system-i386
# (-M xenpv) for a PV guest with a backendtype=qdisk disk. Adds ~60 MB to dom0 (libs, firmware).
pkgs+=,qemu-system-xen
lab_log "debootstrap $LAB_DEBIAN_SUITE (minbase) from $(lab_mirror)"
debootstrap --variant=minbase --include="$pkgs" "$LAB_DEBIAN_SUITE" "$root" "$(lab_mirror)" \
  > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; lab_die "debootstrap failed"; }

# Dom0 lives in RAM: drop what nothing at run time reads.
rm -rf "$root"/usr/share/{doc,man,locale,info} "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*

# Only the modules the lab loads: Xen's device/backend drivers, loop (kernel blkback's disk),
# tun and the bridge (vifs). depmod inside the tree so modprobe resolves dependencies.
src=$boot/x/lib/modules/$kver dst=$root/lib/modules/$kver
mkdir -p "$dst"
cp "$src"/modules.order "$src"/modules.builtin "$src"/modules.builtin.modinfo "$dst"/
(cd "$src" && find kernel/drivers/xen kernel/drivers/block/xen-blkback \
    kernel/drivers/block/xen-blkfront.ko* kernel/drivers/block/loop.ko* \
    kernel/drivers/net/xen-netback kernel/drivers/net/xen-netfront.ko* kernel/drivers/net/tun.ko* \
    kernel/net/bridge/bridge.ko* kernel/net/802/stp.ko* kernel/net/llc/llc.ko* \
    -name '*.ko*' 2>/dev/null | cpio -pdm --quiet "$dst")
chroot "$root" depmod "$kver"
for m in xen-blkback xen-netback xen-blkfront xen-netfront loop bridge tun xen-gntdev xenfs; do
  chroot "$root" modprobe -S "$kver" -n "$m" 2>/dev/null || lab_die "module $m missing from the trimmed tree"
done

# The compare scenario must not discover late that QEMU cannot start (a missing library).
chroot "$root" /usr/libexec/xen-qemu-system-i386 --version >/dev/null || lab_die "xen-qemu-system-i386 does not run in dom0"

# The guest's kernel is the same image; its initramfs is built from this tree.
mkdir -p "$root/lab/guest"
cp "$boot/vmlinuz" "$root/lab/guest/vmlinuz"
"$LAB_DIR/host/build-guest-base.sh" "$root" "$kver" "$root/lab/guest/base.cpio"

echo lab-dom0 > "$root/etc/hostname"
lab_log "packing dom0 cpio ($(du -sh "$root" | cut -f1))"
(cd "$root" && find . -print0 | cpio -o -0 -H newc --quiet) > "$work/dom0.cpio"
mv "$work/dom0.cpio" "$out"
