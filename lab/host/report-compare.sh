#!/bin/bash
# Renders the `compare` scenario's figures as a markdown table (lab/run calls it after a
# compare run; it can be rerun on any saved results file). The medians and ratios were
# computed in dom0 (cmp.ratio.* lines); this only lays them out.
#   usage: report-compare.sh [RESULTS_FILE]   (default: lab/cache/results/compare/latest.txt)
set -euo pipefail
. "$(dirname "$0")/common.sh"
f=${1:-$LAB_CACHE/results/compare/latest.txt}
[ -f "$f" ] || lab_die "no results file $f"
grep -q '^cmp\.ratio\.' "$f" || { lab_log "no cmp.ratio lines in $f (the run did not get that far)"; exit 1; }
echo
echo "| job | unit | ours | kernel | qdisk | ours / kernel | ours / qdisk | ours / kernel per round | ours / qdisk per round |"
echo "|---|---|---:|---:|---:|---:|---:|---|---|"
awk '$1 ~ /^cmp\.ratio\./ {
  job = substr($1, 11); delete kv
  for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
  printf "| %s | %s | %s | %s | %s | **%s** | **%s** | %s | %s |\n", job, kv["unit"], kv["ours"], kv["kernel"], kv["qdisk"],
    kv["ours/kernel"], kv["ours/qdisk"], kv["rounds_ours/kernel"], kv["rounds_ours/qdisk"]
}' "$f"
awk '$1 == "cmp.settings" {s = $0; sub(/^cmp.settings /, "", s)
  print "\nBackend columns: medians of all runs. Ratios: median over rounds of the per-round ratio. " s}' "$f"
