#!/bin/bash
# Prints the key the cached images are stored under: a hash of everything that decides their
# content (the scripts that build them and the Debian package versions they are built from).
# Per-run inputs (dom0 /init, scenarios, payload) are NOT in it: they go into a small overlay
# archive built on every run, so editing a scenario never rebuilds the images.
set -euo pipefail
. "$(dirname "$0")/common.sh"

kernel=$(lab_kernel_pkg)
{
  for f in common.sh cache-key.sh fetch-boot.sh build-dom0.sh build-guest-base.sh; do
    echo "== $f"; cat "$LAB_DIR/host/$f"
  done
  echo "== mirror $(lab_mirror) suite $LAB_DEBIAN_SUITE"
  for p in "$LAB_XEN_PKG" xen-utils-4.17 xenstore-utils "$kernel" busybox-static fio iperf3 ethtool libc6 qemu-system-xen; do
    echo "== $p $(lab_candidate "$p")"
  done
} | sha256sum | cut -c1-16
