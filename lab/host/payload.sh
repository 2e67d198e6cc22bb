#!/bin/bash
# Builds the lab payload for the project's own backends and prints its directory:
#   xen-backends/xen-backends   the service, NativeAOT (needs only libc/libm in dom0)
#   block-xen-backends          the disk hotplug script (systemd/), for disk script=
#   xs-conformance/             self-contained runner of tests/XenStore.Tests ConformanceTests
# Cached under lab/cache/payload/<hash of the sources that go in>, so a second run with the
# same sources is a hash and a directory check. The newest set replaces older ones (each is
# ~100 MB). Usage: lab/host/payload.sh   (prints the payload directory on stdout)
set -euo pipefail
. "$(dirname "$0")/common.sh"
repo=$(cd "$LAB_DIR/.." && pwd)

# NativeAOT links with the system toolchain: clang or gcc as the linker driver, zlib.
need=()
command -v gcc >/dev/null || need+=(gcc)
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)
if [ "${#need[@]}" -gt 0 ]; then
  lab_log "installing ${need[*]} for the NativeAOT publish"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2; }
fi
command -v dotnet >/dev/null || lab_die "dotnet (the .NET SDK) is not on PATH"

# The key: every tracked or new file under the inputs (content, not timestamps), plus the SDK
# version and this script. Anything else cannot change what is published.
inputs=(src tests/XenStore.Tests tests/Directory.Build.props lab/xs-conformance systemd/block-xen-backends
        Directory.Build.props Directory.Packages.props global.json lab/host/payload.sh)
key=$(cd "$repo" && {
  dotnet --version
  git ls-files -co --exclude-standard -z -- "${inputs[@]}" | sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-16)
out=$LAB_CACHE/payload/$key
if [ -f "$out/.complete" ]; then
  lab_log "payload $key reused"
  echo "$out"; exit 0
fi

rm -rf "$LAB_CACHE/payload"
mkdir -p "$out"
t0=$SECONDS
# Publish logs go to stderr: stdout carries only the directory.
lab_log "publishing xen-backends (NativeAOT) into $out"
dotnet publish "$repo/src/Service" -r linux-x64 -c Release -p:PublishAot=true \
  -o "$out/xen-backends" -nologo -v:q >&2 || lab_die "NativeAOT publish of src/Service failed"
rm -f "$out"/xen-backends/*.dbg "$out"/xen-backends/*.pdb   # debug symbols dom0 does not need
"$out/xen-backends/xen-backends" --help >/dev/null || lab_die "the published xen-backends does not start"
install -m 755 "$repo/systemd/block-xen-backends" "$out/block-xen-backends"

lab_log "publishing the XenStore conformance runner (self-contained)"
dotnet publish "$repo/lab/xs-conformance" -r linux-x64 -c Release --self-contained \
  -o "$out/xs-conformance" -nologo -v:q >&2 || lab_die "publish of lab/xs-conformance failed"
touch "$out/.complete"
lab_log "payload $key built in $((SECONDS - t0))s: $(du -sh "$out" | cut -f1)"
echo "$out"
