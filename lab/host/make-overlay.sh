#!/bin/bash
# Builds this run's small cpio that is appended to the cached dom0 archive (Linux unpacks
# concatenated initramfs archives in order, later files win). It holds everything that may
# change between runs without rebuilding images: dom0's /init and helpers, all scenarios,
# the guest's /init (as a second, nested cpio the guest boots with), and the payload.
# Usage: make-overlay.sh SCENARIO PAYLOAD_DIR|"" SCENARIO_TIMEOUT OUTFILE
set -euo pipefail
. "$(dirname "$0")/common.sh"
scenario=$1 payload=$2 scen_timeout=$3 out=$4
ov=$(mktemp -d "$LAB_CACHE/tmp.overlay.XXXXXX")
trap 'rm -rf "$ov"' EXIT

mkdir -p "$ov/lab/scenarios" "$ov/lab/guest" "$ov/opt/payload" "$ov/guest/lab/scenarios"
install -m 755 "$LAB_DIR/dom0/init" "$ov/init"
install -m 644 "$LAB_DIR/dom0/lib.sh" "$ov/lab/lib.sh"
install -m 644 "$LAB_DIR/dom0/ours.sh" "$ov/lab/ours.sh"
for f in "$LAB_DIR"/scenarios/*.sh; do
  case "$f" in
    *.guest.sh) install -m 644 "$f" "$ov/guest/lab/scenarios/" ;;
    *) install -m 644 "$f" "$ov/lab/scenarios/" ;;
  esac
done
printf 'LAB_SCENARIO=%q\nLAB_SCENARIO_TIMEOUT=%q\n' "$scenario" "$scen_timeout" > "$ov/lab/run.conf"

install -m 755 "$LAB_DIR/guest/init" "$ov/guest/init"
install -m 644 "$LAB_DIR/guest/lib.sh" "$ov/guest/lab/lib.sh"
(cd "$ov/guest" && find . -print0 | cpio -o -0 -H newc -R 0:0 --quiet) > "$ov/lab/guest/overlay.cpio"
rm -rf "$ov/guest"

if [ -n "$payload" ]; then
  [ -d "$payload" ] || lab_die "payload $payload is not a directory"
  cp -a "$payload"/. "$ov/opt/payload/"
  lab_log "payload: $(du -sh "$ov/opt/payload" | cut -f1) from $payload -> /opt/payload"
fi
(cd "$ov" && find . -print0 | cpio -o -0 -H newc -R 0:0 --quiet) > "$out"
