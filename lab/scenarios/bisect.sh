# TEMPORARY (not committed): which part crashes the worker on real Xen?
. /lab/ours.sh
img=$(lab_ours_image 16)
try() {  # try TAG CONFIGJSON DISK VIF
  echo "$2" > /run/lab/cfg.json
  "$LAB_SERVICE" serve --config /run/lab/cfg.json > "$LAB_SERVICE_LOG" 2>&1 &
  LAB_SERVICE_PID=$!
  lab_wait_for 60 serve "$LAB_SERVICE" status --config /run/lab/cfg.json
  ( lab_ours_guest "b$1" smoke-part "$3" "$4" "lab.data_mb=4 lab.verify_mb=8 lab.iperf_secs=2 lab.part=$5" ) && r=PASS || r=FAIL
  lab_result "bisect.$1" "$r" deaths="$(grep -c died "$LAB_SERVICE_LOG")" "$(grep -m1 -E 'corrupt|signal|free\(\)' "$LAB_SERVICE_LOG" | cut -c1-200)"
  xl destroy "b$1" 2>/dev/null
  kill "$LAB_SERVICE_PID"; wait "$LAB_SERVICE_PID"; sleep 2
}
try disk-threads '{"ioEngine":"threads"}' "$(lab_ours_disk "$img")" "" disk
try disk-uring '{"ioEngine":"io_uring"}' "$(lab_ours_disk "$img")" "" disk
iperf3 -s -D -B "$LAB_DOM0_IP" --logfile /run/lab/iperf3.log
try net '{}' "" "$LAB_OURS_VIF" net
