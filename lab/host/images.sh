#!/bin/bash
# Makes sure the cached images for the current key exist and prints their directory:
#   xen, vmlinuz (boot files) and dom0-base.cpio (dom0 root, with the guest base inside).
# Older keys are removed so the cache holds one image set.
set -euo pipefail
. "$(dirname "$0")/common.sh"
key=$("$LAB_DIR/host/cache-key.sh")
dir=$LAB_CACHE/images/$key
if [ -f "$dir/.done" ]; then
  lab_log "cached images $key reused"
  echo "$dir"; exit 0
fi
lab_log "building images for key $key (first run: a few minutes)"
mkdir -p "$LAB_CACHE/images"
rm -rf "$dir"; mkdir -p "$dir"
"$LAB_DIR/host/fetch-boot.sh" "$dir/boot"
"$LAB_DIR/host/build-dom0.sh" "$dir/boot" "$dir/dom0-base.cpio"
mv "$dir/boot/xen" "$dir/boot/vmlinuz" "$dir/boot/kver" "$dir/"
rm -rf "$dir/boot"            # the unpacked packages are only needed while building
touch "$dir/.done"
for old in "$LAB_CACHE"/images/*; do
  [ "$old" = "$dir" ] || rm -rf "$old"
done
lab_log "images ready: $(du -sh "$dir" | cut -f1)"
echo "$dir"
