# Guest half of `lifecycle`: reboots once, then keeps data and I/O going while dom0 kills our
# worker, detaches and re-attaches the disk and the NIC; each phase is announced with
# "LAB-GUEST: <phase>" and dom0 acts on it. Every wait is bounded.
lab_wait_for 30 "/dev/xvda (xen-blkfront)" test -b /dev/xvda

# Phase 0: reboot. The first boot leaves a mark on the disk and reboots; xl then destroys the
# domain and creates it again (a new domid: new frontends, new backends). The second boot must
# find the mark through the new connection, then goes on with the phases below.
MARK_SKIP=$((56 * 256))   # 4 KiB block at 56 MiB: clear of the pattern (0-8 MiB) and fio (16-32 MiB)
mark=$(timeout 60 dd if=/dev/xvda bs=4096 skip="$MARK_SKIP" count=1 iflag=direct 2>/dev/null | head -c 16)
if [ "$mark" != LAB-REBOOT-MARK1 ]; then
  printf 'LAB-REBOOT-MARK1' > /tmp/mark
  dd if=/dev/zero bs=4080 count=1 2>/dev/null >> /tmp/mark
  timeout 60 dd if=/tmp/mark of=/dev/xvda bs=4096 seek="$MARK_SKIP" count=1 oflag=direct conv=fsync,notrunc 2>/dev/null || lab_fail "writing the reboot mark failed"
  # Rebooting only when dom0 says so: at low load the whole first boot takes ~6 s, less than
  # `xl create` needs to return, so dom0 could not otherwise check this boot's connections or
  # even learn its domid before it is gone.
  lab_net_up
  timeout 120 nc -l -p 7000 > /tmp/go &
  nc_pid=$!
  echo "LAB-GUEST: ready-to-reboot"
  wait "$nc_pid" || lab_fail "dom0 never said to reboot (port 7000)"
  echo "LAB-GUEST: rebooting"
  sync
  reboot -f
  sleep 60
  lab_fail "reboot -f did not reboot"
fi
lab_result guest.reboot_mark_read_after_reboot ok
# 8 MiB pattern at the start of the disk; fio below works at 16-32 MiB, so it survives.
dd if=/dev/urandom of=/tmp/pattern bs=1M count=8 2>/dev/null
timeout 120 dd if=/tmp/pattern of=/dev/xvda bs=1M oflag=direct conv=fsync 2>/dev/null || lab_fail "pattern write failed"
lab_net_up
lab_wait_for 30 "dom0 to answer ping" ping -c 1 -W 1 "$LAB_DOM0_IP"

# Phase 1: dom0 SIGKILLs the worker while fio --verify runs; the restarted worker must resume
# the ring so that every request is answered and every block verifies.
echo "LAB-GUEST: load-started"
timeout 300 fio --name=kill --filename=/dev/xvda --rw=randwrite --bs=4k --iodepth=8 --size=16M \
  --offset=16M --direct=1 --ioengine=libaio --verify=crc32c --verify_fatal=1 --do_verify=1 \
  --output-format=terse --terse-version=3 > /tmp/fio.out 2>&1 || { cat /tmp/fio.out; lab_fail "fio --verify across a worker kill failed"; }
lab_result guest.fio_verify_across_worker_kill ok

# Phase 2: block-detach, then block-attach of the same image: the pattern must be back.
echo "LAB-GUEST: ready-for-block-detach"
lab_wait_for 120 "xvda to be detached" sh -c '! test -b /dev/xvda'
lab_result guest.xvda_detached ok
lab_wait_for 180 "xvda to be attached again" test -b /dev/xvda
timeout 120 dd if=/dev/xvda of=/tmp/readback bs=1M count=8 iflag=direct 2>/dev/null || lab_fail "read after re-attach failed"
cmp /tmp/pattern /tmp/readback || lab_fail "data after block-detach/attach differs"
lab_result guest.reattached_disk_data ok

# Phase 3: network-detach, then network-attach: a new netfront device must carry traffic.
echo "LAB-GUEST: ready-for-net-detach"
lab_wait_for 120 "eth0 to be detached" sh -c '! test -d /sys/class/net/eth0'
lab_result guest.eth0_detached ok
lab_wait_for 180 "a NIC to be attached again" sh -c 'ls /sys/class/net | grep -q ^eth'
nic=$(ls /sys/class/net | grep ^eth | head -n 1)
ip addr add "$LAB_GUEST_IP/16" dev "$nic"; ip link set "$nic" up
lab_wait_for 60 "dom0 to answer ping on $nic" ping -c 1 -W 1 "$LAB_DOM0_IP"
lab_result guest.reattached_nic_ping ok nic="$nic"
# Stay up until dom0 has checked the new vif from its side (Connected, pings, TCP): a guest
# that powered off at once would tear the vif down under that check.
timeout 120 nc -l -p 7000 > /tmp/go &
nc_pid=$!
echo "LAB-GUEST: nic-reattached"
wait "$nc_pid" || lab_fail "dom0 never connected to port 7000 on the re-attached NIC"
grep -q go /tmp/go || lab_fail "handshake from dom0 garbled"
lab_result guest.tcp_from_dom0_on_reattached_nic ok
