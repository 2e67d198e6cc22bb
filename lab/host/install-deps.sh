#!/bin/bash
# Installs the host tools the lab needs from Debian's packages, only when one is missing, so a
# warm run does not pay for apt. Needs root (the lab builds a root filesystem with chroot).
set -euo pipefail
. "$(dirname "$0")/common.sh"

[ "$(id -u)" -eq 0 ] || lab_die "the lab needs root (debootstrap, chroot, apt-get)"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v cpio >/dev/null || need+=(cpio)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v timeout >/dev/null || need+=(coreutils)

# The cache key and the downloads need apt's package lists; a fresh machine has none.
if [ ${#need[@]} -gt 0 ] || [ -z "$(lab_candidate "$LAB_XEN_PKG")" ] || [ -z "$(lab_kernel_pkg)" ]; then
  lab_log "apt-get update"
  apt-get update -q >/dev/null
fi
if [ ${#need[@]} -gt 0 ]; then
  lab_log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
[ -n "$(lab_candidate "$LAB_XEN_PKG")" ] || lab_die "apt knows no $LAB_XEN_PKG (is this Debian 12?)"
[ -n "$(lab_kernel_pkg)" ] || lab_die "apt cannot resolve linux-image-amd64"
