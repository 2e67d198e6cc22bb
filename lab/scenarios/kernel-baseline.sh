# Scenario (dom0 side): the guest's Linux frontends against Linux's own kernel backends.
# Disk: a loop device served by xen-blkback through the stock `block` hotplug script.
# NIC: a vif on xenbr0 served by xen-netback. The guest checks data integrity with O_DIRECT,
# pings dom0, runs fio and iperf3 (kernel-baseline.guest.sh); dom0 pings the guest.
# These figures are the baseline the project's own backends are later compared with.
# Sizes can be shrunk by a caller (smoke.sh) through the variables below.
: "${LAB_DISK_MB:=64}" "${LAB_DATA_MB:=16}" "${LAB_FIO_SECS:=10}" "${LAB_IPERF_SECS:=5}"
name=kb

modprobe -a loop xen-blkback xen-netback || lab_fail "cannot load the kernel backends"
truncate -s "${LAB_DISK_MB}M" /var/lib/lab/disk.img
loop=$(losetup -f --show /var/lib/lab/disk.img) || lab_fail "losetup failed"
# The guest's iperf3 client talks to this server, on the bridge's link-local address only.
iperf3 -s -D -B "$LAB_DOM0_IP" --logfile /run/lab/iperf3.log || lab_fail "iperf3 server did not start"

cfg=$(lab_guest_cfg "$name" kernel-baseline \
  "format=raw, vdev=xvda, access=rw, target=$loop" \
  "mac=00:16:3e:00:00:01, bridge=xenbr0" \
  "lab.data_mb=$LAB_DATA_MB lab.fio_secs=$LAB_FIO_SECS lab.iperf_secs=$LAB_IPERF_SECS")
t0=$SECONDS
# CPU cost of each iperf3 run, both sides (dom0/lib.sh lab_cpu_sampler, guest lab_iperf3).
lab_cpu_sampler "$name" /run/lab/cpu-samples.txt
lab_create_guest "$cfg"
domid=$(lab_domid "$name")
lab_note "guest $name is domain $domid"
lab_wait_console "$name" 'LAB-GUEST: net-up' 480   # 138 s measured at load average 35
lab_result dom0.guest_create_to_net_up_s $((SECONDS - t0))

# Both devices must be Connected (4) on kernel backends, or we are not measuring what we claim.
vbd_state=$(xenstore-read "/local/domain/0/backend/vbd/$domid/51712/state")
vif_state=$(xenstore-read "/local/domain/0/backend/vif/$domid/0/state")
lab_result dom0.backend_state vbd=$vbd_state vif=$vif_state
[ "$vbd_state" = 4 ] && [ "$vif_state" = 4 ] || lab_fail "backends not connected (vbd=$vbd_state vif=$vif_state)"
lsmod | grep -q '^xen_blkback' && lsmod | grep -q '^xen_netback' || lab_fail "kernel backends not loaded"

ping_out=$(ping -c 5 -i 0.2 -W 2 "$LAB_GUEST_IP") || { echo "$ping_out"; lab_fail "dom0 cannot ping the guest"; }
lab_result dom0.ping_to_guest ok rtt_avg_ms="$(echo "$ping_out" | awk -F/ '/^rtt/{print $5}')"
# Tell the guest to go on (it waits on this TCP port, so its measurements do not overlap ours).
echo go > "/dev/tcp/$LAB_GUEST_IP/7000" || lab_fail "dom0 cannot reach the guest's TCP port 7000"

lab_wait_console "$name" 'LAB-GUEST-DONE' $((300 + 3 * LAB_FIO_SECS + 3 * LAB_IPERF_SECS + 2 * LAB_DATA_MB))   # ~126 s used at load 35 for smoke
lab_guest_relay "$name"
[ "$(lab_guest_verdict "$name")" = PASS ] || { lab_tail_console "$name"; lab_fail "guest verdict: $(lab_guest_verdict "$name")"; }
for w in idle iperf3-tx iperf3-rx; do lab_cpu_report /run/lab/cpu-samples.txt "$name" "$w"; done
lab_destroy_guest "$name"
lab_result dom0.scenario_s $((SECONDS - t0))
