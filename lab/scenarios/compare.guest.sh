# Guest half of `compare`: the same fio and iperf3 jobs, whichever backend dom0 put behind
# xvda / eth0 (dom0 names it in lab.backend). Every run prints one figure line
#   LAB-RESULT: cmp.<backend>.<job> <value> rep=<n>
# and dom0 takes the medians and ratios. Parameters (lab.* words): disk=0|1, net=0|1,
# reps, fio_secs, iperf_secs.
: "${LAB_BACKEND:?}" "${LAB_DISK:=1}" "${LAB_NET:=1}" "${LAB_REPS:=3}" "${LAB_FIO_SECS:=10}" "${LAB_IPERF_SECS:=10}"

if [ "$LAB_NET" = 1 ]; then
  lab_net_up
  lab_wait_for 30 "dom0 to answer ping" ping -c 1 -W 1 "$LAB_DOM0_IP"
  # Handshake as in kernel-baseline: dom0 pings us, then releases us, so nothing overlaps.
  timeout 120 nc -l -p 7000 > /tmp/go &
  nc_pid=$!
  echo "LAB-GUEST: net-up"
  wait "$nc_pid" || lab_fail "dom0 never connected to port 7000"
  grep -q go /tmp/go || lab_fail "handshake from dom0 garbled"
fi

if [ "$LAB_DISK" = 1 ]; then
  lab_wait_for 120 "/dev/xvda (xen-blkfront)" test -b /dev/xvda
  sectors=$(cat /sys/block/xvda/size)
  half_mb=$((sectors / 2 / 2048))
  [ "$half_mb" -ge 16 ] || lab_fail "xvda is too small for the sequential jobs ($sectors sectors)"
  lab_result "cmp.$LAB_BACKEND.disk_bytes" $((sectors * 512))
fi

# run_fio JOB: one fio run of a named job, terse v3 on stdout. Two jobs (threads) per run:
# the random ones over the whole disk, the sequential ones each on its own half (so each stays
# sequential). Direct I/O so the guest's page cache never answers for the backend.
run_fio() {
  case "$1" in
    randread_4k)  set -- "$1" --rw=randread --bs=4k --iodepth=16 ;;
    randwrite_4k) set -- "$1" --rw=randwrite --bs=4k --iodepth=16 ;;
    read_1m)      set -- "$1" --rw=read --bs=1M --iodepth=4 --size="${half_mb}M" --offset_increment="${half_mb}M" ;;
    write_1m)     set -- "$1" --rw=write --bs=1M --iodepth=4 --size="${half_mb}M" --offset_increment="${half_mb}M" ;;
  esac
  name=$1; shift
  fio --name="$name" --filename=/dev/xvda --direct=1 --ioengine=libaio --numjobs=2 --group_reporting \
      --runtime="$LAB_FIO_SECS" --time_based --thread "$@" \
      --output-format=terse --terse-version=3 2>/tmp/fio.err
}

# fio_figure JOB LINE: IOPS for the 4 KiB jobs, MiB/s for the 1 MiB ones (terse v3: field 7/8
# read KiB/s and IOPS, 48/49 write KiB/s and IOPS).
fio_figure() {
  echo "$2" | awk -F';' -v job="$1" '{
    if (job == "randread_4k") print $8; else if (job == "randwrite_4k") print $49;
    else if (job == "read_1m") printf "%.1f\n", $7 / 1024; else printf "%.1f\n", $48 / 1024 }'
}

rep=1
while [ "$rep" -le "$LAB_REPS" ]; do
  if [ "$LAB_DISK" = 1 ]; then
    for job in randread_4k randwrite_4k read_1m write_1m; do
      # Known flake (see kernel-baseline): fio may abort at start with std::bad_alloc; one retry.
      if ! line=$(run_fio "$job"); then
        lab_result "cmp.$LAB_BACKEND.fio_retry" "$job: $(tr '\n' ' ' < /tmp/fio.err | cut -c1-160)"
        line=$(run_fio "$job") || { cat /tmp/fio.err; lab_fail "fio $job failed twice"; }
      fi
      value=$(fio_figure "$job" "$line")
      awk -v v="$value" 'BEGIN{exit !(v + 0 > 0)}' || lab_fail "fio $job reported no throughput: $line"
      lab_result "cmp.$LAB_BACKEND.$job" "$value" rep="$rep"
    done
  fi
  if [ "$LAB_NET" = 1 ]; then
    # The receiver's bitrate: guest->dom0 (tx) and, with -R, dom0->guest (rx).
    for dir in tx rx; do
      lab_iperf3_run "$dir"
      lab_iperf3_bitrate "$dir"
      lab_result "cmp.$LAB_BACKEND.iperf3_$dir" "$iperf3_mbit" rep="$rep"
    done
  fi
  rep=$((rep + 1))
done
