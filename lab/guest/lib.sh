# Helpers for guest scenario scripts (busybox sh). Lines reach dom0 through the guest console.
LAB_DOM0_IP=169.254.0.1
LAB_GUEST_IP=169.254.0.2

lab_result() { echo "LAB-RESULT: $*"; }
lab_fail() { echo "LAB-GUEST-FAIL: $*"; exit 1; }

# lab_wait_for SECONDS DESCRIPTION COMMAND...: as in dom0, but failing the guest script.
lab_wait_for() {
  secs=$1 what=$2; shift 2
  i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -le "$secs" ] || lab_fail "timed out after ${secs}s waiting for $what"
    sleep 1
  done
}

# Seconds since boot with centisecond resolution, for timing steps with busybox only.
lab_now() { cut -d' ' -f1 /proc/uptime; }
lab_rate_mbs() { awk -v mb="$1" -v t0="$2" -v t1="$3" 'BEGIN{d=t1-t0; if(d<=0)d=0.01; printf "%.1f", mb/d}'; }

# Brings up eth0 (xen-netfront) with the guest's link-local address.
lab_net_up() {
  lab_wait_for 30 "eth0 (xen-netfront)" test -d /sys/class/net/eth0
  ip link set lo up
  ip addr add "$LAB_GUEST_IP/16" dev eth0
  ip link set eth0 up
}

# Measured windows: "LAB-MARK: LABEL-start" / "LAB-MARK: LABEL-end" console lines bracket a piece
# of work; dom0's lab_cpu_sampler snapshots its own counters at each mark (dom0 lib.sh), and
# the guest reports its side: CPU over the window (/proc/stat, % of all its vCPUs' ticks) and
# netfront's event-channel interrupts (/proc/interrupts lines named vif<N>-q<N>-tx/rx or
# eth*: count, per second, per MByte moved), all interrupts together and the busiest other.
# lab_window_begin LABEL / lab_window_end LABEL [MBYTES]: figures guest.LABEL_cpu, _irqs
# (LABEL with "-" as "_").
lab_window_begin() {
  head -n1 /proc/stat > /tmp/stat0; cat /proc/interrupts > /tmp/irq0; lab_window_t0=$(lab_now)
  echo "LAB-MARK: $1-start"
}
lab_window_end() {
  echo "LAB-MARK: $1-end"
  t1=$(lab_now); head -n1 /proc/stat > /tmp/stat1; cat /proc/interrupts > /tmp/irq1
  # dom0 snapshots this mark (1.4-1.6 s under load) before anything else happens here: the next
  # window's start, or, after the last one, the guest's shutdown, which took the backend's
  # threads away before the end snapshot of iperf3-rx and left that window without them.
  sleep 2
  awk -v key="$(echo "$1" | tr - _)" -v dt="$(awk -v a="$lab_window_t0" -v b="$t1" 'BEGIN{print b-a}')" -v mb="${2:-0}" '
    FILENAME ~ /stat/ { for (i = 2; i <= 9; i++) st[FILENAME ~ /1$/, i] = $i; next }
    FNR == 1 { ncpu = NF; next }
    { n = 0; for (i = 2; i <= ncpu + 1; i++) if ($i ~ /^[0-9]+$/) n += $i
      k = $NF; if (k !~ /^(eth|vif)[0-9]/) k = "other:" $NF; c[FILENAME ~ /1$/, k] += n; keys[k] = 1 }
    function pct(x, t) { return t > 0 ? sprintf("%.1f", 100 * x / t) : "?" }
    END {
      split("user nice sys idle iowait irq softirq steal", fn, " ")
      tot = 0; for (i = 2; i <= 9; i++) { d[i] = st[1, i] - st[0, i]; tot += d[i] }
      line = sprintf("guest.%s_cpu window_s=%.2f ticks=%d busy_pct=%s", key, dt, tot, pct(d[2] + d[3] + d[4] + d[7] + d[8], tot))
      for (i = 2; i <= 9; i++) line = line " " fn[i - 1] "_pct=" pct(d[i], tot)
      print line
      line = sprintf("guest.%s_irqs mbytes=%s", key, mb); net = 0; all = 0; busiest = ""; bx = 0
      for (k in keys) {
        x = c[1, k] - c[0, k]; all += x
        if (k !~ /^other:/) { net += x; line = line " " k "=" x } else if (x > bx) { bx = x; busiest = substr(k, 7) }
      }
      printf "%s netfront=%d netfront_per_s=%.0f netfront_per_mbyte=%s all=%d all_per_s=%.0f busiest_other=%s:%d\n", line, net, (dt > 0 ? net / dt : 0), (mb > 0 ? sprintf("%.2f", net / mb) : "?"), all, (dt > 0 ? all / dt : 0), busiest, bx
    }' /tmp/stat0 /tmp/stat1 /tmp/irq0 /tmp/irq1 | while read -r l; do lab_result $l; done
}

# lab_idle_window SECS: a measured window with no traffic ("idle"): what the backends, the
# lab's own polling and the snapshots cost when nothing moves.
lab_idle_window() { lab_window_begin idle; sleep "$1"; lab_window_end idle; }

# lab_iperf3_run DIR: one iperf3 run of $LAB_IPERF_SECS (5) s to dom0's server, tx = guest->dom0,
# rx = dom0->guest (-R); leaves its output in iperf3_out and its status in iperf3_rc.
# lab_iperf3_receiver UNIT: the receiver line's figure in UNIT (Mbits/sec, MBytes) of that run.
# lab_iperf3_bitrate DIR: the run's receiver bitrate in iperf3_mbit; fails the scenario (in this
# shell, not a subshell) when the run failed or printed none.
lab_iperf3_run() {
  local flag=
  [ "$1" = rx ] && flag=-R
  iperf3_out=$(iperf3 -c "$LAB_DOM0_IP" -t "${LAB_IPERF_SECS:-5}" -f m $flag 2>&1)
  iperf3_rc=$?
}
lab_iperf3_receiver() { echo "$iperf3_out" | awk -v u="$1" '/receiver/{for(i=2;i<=NF;i++) if($i==u) print $(i-1)}'; }
lab_iperf3_bitrate() {
  [ "$iperf3_rc" -eq 0 ] || { echo "$iperf3_out"; lab_fail "iperf3 $1 failed"; }
  iperf3_mbit=$(lab_iperf3_receiver Mbits/sec)
  [ -n "$iperf3_mbit" ] || { echo "$iperf3_out"; lab_fail "iperf3 $1 printed no receiver bitrate"; }
}

# lab_iperf3 DIR: lab_iperf3_run as the measured window iperf3-DIR. Figures: the receiver's
# bitrate (guest.iperf3_DIR_mbits) and the window's (guest.iperf3_DIR_cpu, _irqs with the MBytes).
lab_iperf3() {
  lab_window_begin "iperf3-$1"
  lab_iperf3_run "$1"
  lab_window_end "iperf3-$1" "$(lab_iperf3_receiver MBytes)"
  lab_iperf3_bitrate "$1"
  lab_result "guest.iperf3_$1_mbits" "$iperf3_mbit"
}
