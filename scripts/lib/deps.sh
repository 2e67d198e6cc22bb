# Debian packages the test suite needs; installed only when missing.
#   libxen-dev, gcc, gcc-multilib: the ABI proof compiles Xen's own headers (-m64 and -m32).
#   linux-libc-dev: asm/unistd_64.h and linux/seccomp.h for the workers' system call filter proof.
#   libxengnttab1, libxenevtchn1: the real hypervisor libraries the Native layer loads.
#   iproute2: network namespaces and tap devices for the network tests.
#   mount: losetup, for block-device (loop) image tests.
#   fuse3, libfuse3-dev, pkg-config: the EIO tests build and mount a FUSE filesystem
#   (tests/Backend.Block.Tests/c/faultfs.c); no device-mapper here for dm-error.
TEST_PACKAGES=(libxen-dev gcc gcc-multilib linux-libc-dev libxengnttab1 libxenevtchn1 iproute2 mount python3 fuse3 libfuse3-dev pkg-config)

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

ensure_packages() {
  local missing
  missing=$(missing_packages "$@")
  [ -z "$missing" ] && return 0
  echo "installing: $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null
}

ensure_test_deps() {
  ensure_packages "${TEST_PACKAGES[@]}"
}
