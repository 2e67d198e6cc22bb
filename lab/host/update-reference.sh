#!/bin/bash
# Copies the xenstore ground truth from the latest xenstore-probe run into the repository
# (lab/reference/libxl-nodes.txt), with a header saying where it came from. Run it after
# `lab/run xenstore-probe` passed; review the diff before committing.
set -euo pipefail
. "$(dirname "$0")/common.sh"
src=$LAB_CACHE/results/xenstore-probe/latest.txt
[ -s "$src" ] || lab_die "no $src: run lab/run xenstore-probe first"
grep -q '^xs\.connected\.backend_vbd ' "$src" || lab_die "$src lacks the connected snapshot (did the run pass?)"
out=$LAB_DIR/reference/libxl-nodes.txt
{
  echo "# Ground truth: what real Xen 4.17 libxl/xl (Debian $(lab_candidate xen-utils-4.17)) writes"
  echo "# to xenstore for a PV guest with disk 'format=raw, vdev=xvda, access=rw, target=/dev/loop0'"
  echo "# and vif 'mac=00:16:3e:00:00:02, bridge=xenbr0', recorded by lab/run xenstore-probe."
  echo "# Format: <tag> <path> = \"<value>\"  (<perms>) as printed by xenstore-ls -fp;"
  echo "#   perms: first letter+domid = owner and default for others (n=none r=read w=write b=both),"
  echo "#   further entries grant that access to that domain."
  echo "# Tags: xs.libxl.*     = libxl's writes alone (nothing served the device yet: state 1);"
  echo "#       xs.connected.* = after Linux's kernel blkback/netback and the guest's frontends"
  echo "#                        connected (state 4). Domain ids are those of that run."
  grep -E '^(xs\.|dom0\.xenstore)' "$src"
} > "$out"
lab_log "wrote $out ($(wc -l < "$out") lines)"
