# Guest half of `disk` (and of `smoke`): xen-blkfront against the project's block backend.
# 1. Integrity: random data written with O_DIRECT, page cache dropped, read back and compared.
# 2. fio --verify with direct I/O, 2 jobs on disjoint halves, queue depth > 1: 4 KiB random
#    writes (QD8) and 1 MiB sequential writes (QD4), each followed by fio's own read-back of
#    every block with crc32c checks; any mismatch fails fio (verify_fatal) and the scenario.
: "${LAB_DATA_MB:=16}" "${LAB_VERIFY_MB:=32}"

lab_wait_for 30 "/dev/xvda (xen-blkfront)" test -b /dev/xvda
lab_result guest.disk_bytes "$(awk '{print $1 * 512}' /sys/block/xvda/size)"

dd if=/dev/urandom of=/tmp/pattern bs=1M count="$LAB_DATA_MB" 2>/dev/null
t0=$(lab_now)
dd if=/tmp/pattern of=/dev/xvda bs=1M oflag=direct conv=fsync 2>/dev/null || lab_fail "write to xvda failed"
t1=$(lab_now)
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/xvda of=/tmp/readback bs=1M count="$LAB_DATA_MB" iflag=direct 2>/dev/null || lab_fail "read from xvda failed"
t2=$(lab_now)
cmp /tmp/pattern /tmp/readback || lab_fail "data read back differs from data written"
lab_result guest.disk_integrity ok mib="$LAB_DATA_MB" sha256="$(sha256sum < /tmp/readback | cut -c1-16)"
lab_result guest.dd_direct_write_mbs "$(lab_rate_mbs "$LAB_DATA_MB" "$t0" "$t1")"
lab_result guest.dd_direct_read_mbs "$(lab_rate_mbs "$LAB_DATA_MB" "$t1" "$t2")"
rm -f /tmp/pattern /tmp/readback

# fio_verify NAME RW BS DEPTH: terse v3, field 8 = read IOPS (the verify pass), 49 = write IOPS.
fio_verify() {
  half=$((LAB_VERIFY_MB / 2))
  fio --name="$1" --filename=/dev/xvda --rw="$2" --bs="$3" --iodepth="$4" --numjobs=2 \
      --size="${half}M" --offset_increment="${half}M" --direct=1 --ioengine=libaio --thread \
      --verify=crc32c --verify_fatal=1 --do_verify=1 --group_reporting \
      --output-format=terse --terse-version=3 2>/tmp/fio.err
}
for spec in "rand4k randwrite 4k 8" "seq1m write 1M 4"; do
  set -- $spec
  t0=$(lab_now)
  out=$(fio_verify "$@") || { cat /tmp/fio.err; lab_fail "fio --verify $1 failed: $(tr '\n' ' ' < /tmp/fio.err | cut -c1-200)"; }
  t1=$(lab_now)
  # fio may print notes before the terse line ("multiple writers may overwrite blocks": not
  # here, the jobs' halves are disjoint); the figures are on the last line.
  line=$(echo "$out" | tail -n 1)
  # fio exits 0 only if every block verified; also insist it really moved the data (terse v3:
  # field 6 = read KiB, i.e. the verify pass; field 47 = write KiB).
  echo "$line" | awk -F';' -v mb="$LAB_VERIFY_MB" '{exit !($6 >= mb*1024 && $47 >= mb*1024)}' \
    || lab_fail "fio $1 moved less than ${LAB_VERIFY_MB} MiB each way: $line"
  lab_result "guest.fio_verify_$1" ok jobs=2 qd="$4" mib="$LAB_VERIFY_MB" \
    write_iops="$(echo "$line" | cut -d';' -f49)" verify_read_iops="$(echo "$line" | cut -d';' -f8)" \
    secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')"
done
