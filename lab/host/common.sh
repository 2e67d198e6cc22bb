# Sourced by the host-side lab scripts: paths and small helpers shared by all of them.
# shellcheck shell=bash
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_CACHE=${LAB_CACHE:-$LAB_DIR/cache}
# Debian's packages, pinned by name; the versions the mirror offers go into the cache key.
LAB_XEN_PKG=xen-hypervisor-4.17-amd64
LAB_DEBIAN_SUITE=bookworm

lab_log() { printf '[lab %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
lab_die() { lab_log "ERROR: $*"; exit 1; }

# The mirror debootstrap uses: the first Debian URI apt is configured with, so the lab uses
# exactly the mirror this machine is allowed to reach (override with LAB_MIRROR).
lab_mirror() {
  if [ -n "${LAB_MIRROR:-}" ]; then echo "$LAB_MIRROR"; return; fi
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -n1 | awk '{print ($1=="deb") ? $2 : $2}')
  echo "${uri:-http://deb.debian.org/debian}"
}

# The Debian kernel package that linux-image-amd64 currently points at (one kernel serves
# as dom0 and as guest).
lab_kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}

lab_candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2; exit}'; }
