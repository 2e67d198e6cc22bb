# Guest half of `migrate`: keeps fio --verify on the disk and an iperf3 stream on the NIC
# running, back to back, while dom0 saves/restores and migrates this guest underneath. Every fio
# run writes and then reads back every block with crc32c (verify_fatal); a run that spans a
# suspend must still finish with no error and no verify failure, because blkfront re-issues what
# was in flight (blkif_recover) against the new backend. Dom0 ends the load by sending "stop"
# to TCP port 7001; the socket survives the moves (the guest kernel does).
: "${LAB_VERIFY_MB:=8}"

lab_wait_for 30 "/dev/xvda (xen-blkfront)" test -b /dev/xvda
lab_net_up
lab_wait_for 60 "dom0 to answer ping" ping -c 1 -W 1 "$LAB_DOM0_IP"

nc -l -p 7001 > /tmp/stop 2>/dev/null &
stopped() { grep -q stop /tmp/stop 2>/dev/null; }

# iperf3 to dom0 in 3 s runs, alternating direction; a run that spans a move may fail (its TCP
# stream stalls while the guest is frozen), which is counted, not fatal. Bounded per run.
(
  i=0 ok=0 bad=0
  while ! stopped; do
    flag=; [ $((i % 2)) -eq 1 ] && flag=-R
    if timeout 60 iperf3 -c "$LAB_DOM0_IP" -t 3 -f m $flag > /tmp/iperf.out 2>&1; then ok=$((ok + 1)); else bad=$((bad + 1)); sleep 1; fi
    i=$((i + 1))
    echo "$ok $bad" > /tmp/iperf.count
  done
) &
iperf_pid=$!

# fio: two jobs on disjoint areas, 4 KiB random writes at QD8 and 128 KiB sequential writes at
# QD4, each followed by the read-back of every block. "err=" is fio's per-job error count.
runs=0 failed=0
echo "LAB-GUEST: load-started"
while ! stopped; do
  runs=$((runs + 1))
  if timeout 600 fio --filename=/dev/xvda --direct=1 --ioengine=libaio --verify=crc32c --verify_fatal=1 \
      --do_verify=1 --size="${LAB_VERIFY_MB}M" \
      --name=rand4k --rw=randwrite --bs=4k --iodepth=8 --offset=0 \
      --name=seq128k --rw=write --bs=128k --iodepth=4 --offset=32M > /tmp/fio.out 2>&1 \
     && [ "$(grep -c 'err= 0' /tmp/fio.out)" -eq 2 ]; then
    echo "LAB-GUEST: fio-run $runs ok"
  else
    failed=$((failed + 1))
    echo "LAB-GUEST: fio-run $runs FAILED"
    grep -aE 'err=|verify|error|bad' /tmp/fio.out | head -n 20
  fi
done
wait "$iperf_pid" 2>/dev/null
read -r iperf_ok iperf_bad < /tmp/iperf.count 2>/dev/null || { iperf_ok=0 iperf_bad=0; }
lab_result guest.fio_verify_runs "$runs" failed="$failed" mib_per_job="$LAB_VERIFY_MB"
lab_result guest.iperf3_runs ok="$iperf_ok" failed="$iperf_bad"
blk_err=$(dmesg | grep -ciE 'blk_update_request|I/O error|xen-blkfront.*(fail|error)' || true)
lab_result guest.kernel_io_errors "$blk_err"
[ "$failed" -eq 0 ] || lab_fail "$failed of $runs fio --verify runs failed across the moves"
[ "$blk_err" -eq 0 ] || { dmesg | grep -iE 'blk_update_request|I/O error|blkfront' | tail -n 10; lab_fail "the guest kernel logged disk errors"; }

# After the last move the network must carry a full stream again, both ways.
for flag in "" -R; do
  timeout 60 iperf3 -c "$LAB_DOM0_IP" -t 3 -f m $flag > /tmp/iperf.out 2>&1 || { cat /tmp/iperf.out; lab_fail "iperf3 $flag after the last move failed"; }
done
lab_result guest.iperf3_after_moves ok
