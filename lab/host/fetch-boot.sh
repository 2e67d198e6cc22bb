#!/bin/bash
# Fetches the two boot files QEMU loads directly (Xen and the Linux kernel) plus the kernel's
# modules, from Debian's packages, into $1 (a cache directory). apt-get download + dpkg -x
# rather than apt-get install: neither package should be installed on the build machine.
set -euo pipefail
. "$(dirname "$0")/common.sh"
out=$1
[ -f "$out/.done" ] && exit 0
rm -rf "$out"; mkdir -p "$out/debs" "$out/x"

kernel=$(lab_kernel_pkg)
lab_log "downloading $LAB_XEN_PKG and $kernel"
(cd "$out/debs" && apt-get download -q -o APT::Sandbox::User=root "$LAB_XEN_PKG" "$kernel" >/dev/null)
for deb in "$out"/debs/*.deb; do dpkg -x "$deb" "$out/x"; done

# Xen ships gzipped; QEMU's -kernel wants the plain 32-bit multiboot ELF.
xen_gz=$(ls "$out"/x/boot/xen-4.17*-amd64.gz | head -n1)
gunzip -c "$xen_gz" > "$out/xen"
cp "$(ls "$out"/x/boot/vmlinuz-* | head -n1)" "$out/vmlinuz"
basename "$(ls -d "$out"/x/lib/modules/*)" > "$out/kver"
file_type=$(head -c 4 "$out/xen" | od -An -tx1 | tr -d ' ')
[ "$file_type" = 7f454c46 ] || lab_die "gunzipped Xen is not an ELF file"
rm -rf "$out/debs"
touch "$out/.done"
