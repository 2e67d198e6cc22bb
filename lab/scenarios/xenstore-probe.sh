# Scenario: the ground truth for the project's simulated toolstack. Shows the real xenstored
# answering on its socket and records, with permissions, exactly what libxl writes for a disk
# and a NIC of a PV guest:
#   phase "libxl": no backend is loaded (and no udevd runs to load one), so xl create writes
#     its nodes and then waits 10 s for InitWait that never comes; we snapshot in that window,
#     so these lines are libxl's writes alone. One guest per device kind, because libxl adds
#     vifs only after the disks have connected.
#   phase "connected": Linux's kernel backends loaded, a guest running with both devices; the
#     snapshot then also holds what blkback/netback and blkfront/netfront negotiated.
# Lines: "LAB-RESULT: xs.<phase>.<what> <xenstore-ls -fp line>".

xs_dump() {  # xs_dump TAG PATH: every node under PATH with its value and permissions
  xenstore-ls -fp "$2" 2>&1 | sed "s|^|LAB-RESULT: xs.$1 |"
}

# The real C xenstored (or oxenstored) must be the one answering on the Unix socket.
[ -S /run/xenstored/socket ] || lab_fail "no /run/xenstored/socket"
pid=$(cat /run/xenstored.pid)
lab_result dom0.xenstored "$(readlink "/proc/$pid/exe")" pid="$pid" socket=/run/xenstored/socket
lab_result dom0.xenstore_read_socket "$(xenstore-read -s /local/domain/0/name)"

modprobe loop || lab_fail "cannot load loop"
truncate -s 16M /var/lib/lab/probe.img
loop=$(losetup -f --show /var/lib/lab/probe.img) || lab_fail "losetup failed"
disk="format=raw, vdev=xvda, access=rw, target=$loop"
vif="mac=00:16:3e:00:00:02, bridge=xenbr0"

# probe_unserved NAME KIND DISK VIF: snapshot libxl's writes for one device kind.
probe_unserved() {
  local name=$1 kind=$2 devid=$3 cfg domid be
  lsmod | grep -qE '^xen_(blk|net)back' && lab_fail "a kernel backend is loaded; phase libxl needs none"
  cfg=$(lab_guest_cfg "$name" xenstore-probe "$4" "$5")
  timeout 120 xl create "$cfg" > "/run/lab/$name.create.log" 2>&1 &
  local xl_pid=$!
  lab_wait_for 60 "domain $name" lab_domid "$name" || exit 1
  domid=$(lab_domid "$name")
  be=/local/domain/0/backend/$kind/$domid/$devid
  lab_wait_for 30 "libxl to write $be" xenstore-read "$be/state" || exit 1
  lab_result "xs.libxl.domid $domid"
  xs_dump "libxl.backend_$kind" "$be"
  xs_dump "libxl.frontend_$kind" "/local/domain/$domid/device/$kind/$devid"
  xs_dump "libxl.libxl_$kind" "/libxl/$domid/device/$kind/$devid"
  # libxl must give up: nothing serves the device. If it did not, our premise is wrong.
  if wait "$xl_pid"; then lab_fail "xl create $name succeeded with no backend loaded"; fi
  lab_result "xs.libxl.${kind}_unserved_create" "failed as expected: $(grep -iE 'error|fail|timed' "/run/lab/$name.create.log" | head -n 2 | tr '\n' ' ' | cut -c1-240)"
  lab_destroy_guest "$name"
}
probe_unserved probe-vbd vbd 51712 "$disk" ""
probe_unserved probe-vif vif 0 "" "$vif"

modprobe -a xen-blkback xen-netback || lab_fail "cannot load the kernel backends"
name=probe
lab_create_guest "$(lab_guest_cfg "$name" xenstore-probe "$disk" "$vif")"
domid=$(lab_domid "$name")
lab_wait_console "$name" 'LAB-GUEST: devices-up' 240
# sh -c: re-read on every poll (a plain "$(...)" argument would be read once, at the call).
lab_wait_for 30 "vif to connect" sh -c "[ \"\$(xenstore-read /local/domain/0/backend/vif/$domid/0/state)\" = 4 ]" || exit 1
lab_result "xs.connected.domid $domid"
xs_dump connected.backend_vbd "/local/domain/0/backend/vbd/$domid/51712"
xs_dump connected.backend_vif "/local/domain/0/backend/vif/$domid/0"
xs_dump connected.frontend_vbd "/local/domain/$domid/device/vbd/51712"
xs_dump connected.frontend_vif "/local/domain/$domid/device/vif/0"
# The directories above them, whose permissions libxl also sets.
for p in /local/domain/0/backend/vbd/$domid /local/domain/0/backend/vif/$domid \
         /local/domain/$domid/device /local/domain/$domid/device/vbd /local/domain/$domid/device/vif; do
  xenstore-ls -fp "$(dirname "$p")" 2>/dev/null | grep -m1 -F "$p = " | sed 's/^/LAB-RESULT: xs.connected.dir /'
done
for k in vbd/$domid/51712 vif/$domid/0; do
  [ "$(xenstore-read "/local/domain/0/backend/$k/state")" = 4 ] || lab_fail "backend $k not connected"
done
lab_destroy_guest "$name"
