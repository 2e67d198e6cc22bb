# Scenario: our backends through a guest's life events, on real Xen: a guest reboot (new domid,
# old one cleaned up, the disk's content seen again through the new connection), the worker SIGKILLed under
# fio --verify load and restarted by the supervisor (data must verify), xl block-detach +
# block-attach (data must be back), xl network-detach + network-attach (traffic must flow on
# the new vif), and xl destroy leaving no worker, tap or xenstore node (lab_ours_gone).
. /lab/ours.sh
name=lc
lab_ours_start
img=$(lab_ours_image 64)
disk=$(lab_ours_disk "$img")
lab_create_guest "$(lab_guest_cfg "$name" lifecycle "$disk" "$LAB_OURS_VIF" loglevel=7)"
domid=$(lab_domid "$name")
# The first boot wrote its mark and waits for dom0's word before rebooting.
lab_wait_console "$name" 'LAB-GUEST: ready-to-reboot' 480
lab_ours_connected "$domid" vbd 51712
lab_ours_connected "$domid" vif 0

# Reboot: xl destroys the domain and creates it again under a new domid. Nothing of the old one
# may stay in dom0, and the new one's frontends must connect to fresh backends.
lab_wait_for 60 "the guest to answer ping before its reboot" ping -c 1 -W 1 "$LAB_GUEST_IP" || exit 1
echo go > "/dev/tcp/$LAB_GUEST_IP/7000" || lab_fail "dom0 cannot reach the guest's TCP port 7000"
t_reboot=$SECONDS
lab_wait_console "$name" 'LAB-GUEST: rebooting' 120
lab_wait_for 180 "guest $name to come back under a new domid" \
  sh -c "d=\$(xl domid $name 2>/dev/null) && [ -n \"\$d\" ] && [ \"\$d\" != $domid ]" || { lab_ours_log_tail; exit 1; }
old_domid=$domid
domid=$(lab_domid "$name")
lab_ours_gone "$old_domid"
lab_ours_connected "$domid" vbd 51712
lab_ours_connected "$domid" vif 0
lab_result dom0.reboot ok old_domid="$old_domid" new_domid="$domid" secs=$((SECONDS - t_reboot))

lab_wait_console "$name" 'LAB-GUEST: load-started' 300
sleep 3
old=$(lab_ours_worker "$domid")
[ -n "$old" ] || lab_fail "no worker to kill"
kill -KILL "$old"
lab_wait_for 60 "a new worker for domain $domid" sh -c "p=\$(pgrep -f 'xen-backends worker --domid $domid( |\$)' | head -n1); [ -n \"\$p\" ] && [ \"\$p\" != $old ]" || { lab_ours_log_tail; exit 1; }
lab_result dom0.worker_restarted old="$old" new="$(lab_ours_worker "$domid")"

lab_wait_console "$name" 'LAB-GUEST: ready-for-block-detach' 400
timeout 120 xl block-detach "$name" xvda || { lab_ours_log_tail; lab_fail "xl block-detach failed"; }
lab_result dom0.block_detach ok
# The guest must have seen the disk go before it comes back (under TCG its 1 s poll can miss a short gap).
lab_wait_console "$name" 'guest.xvda_detached ok' 300
timeout 120 xl block-attach "$name" "$disk" || { lab_ours_log_tail; lab_fail "xl block-attach failed"; }
lab_ours_connected "$domid" vbd 51712

lab_wait_console "$name" 'LAB-GUEST: ready-for-net-detach' 300
timeout 120 xl network-detach "$name" 0 || { lab_ours_log_tail; lab_fail "xl network-detach failed"; }
lab_wait_for 30 "tap vif$domid.0 to disappear" sh -c "! ip link show vif$domid.0" || exit 1
lab_result dom0.network_detach ok
# As for the disk: a re-attach within the guest's poll interval failed the run once (eth0 never seen gone).
lab_wait_console "$name" 'guest.eth0_detached ok' 300
timeout 120 xl network-attach "$name" "$LAB_OURS_VIF" || { lab_ours_log_tail; lab_fail "xl network-attach failed"; }
lab_wait_console "$name" 'LAB-GUEST: nic-reattached' 300
devid=$(xenstore-list "/local/domain/0/backend/vif/$domid" | tail -n 1)
lab_ours_connected "$domid" vif "$devid"
lab_result dom0.network_attach ok devid="$devid"
out=$(ping -c 5 -i 0.2 -W 2 "$LAB_GUEST_IP") || { echo "$out"; lab_ours_log_tail; lab_fail "dom0 cannot ping the guest on its re-attached NIC"; }
lab_result dom0.ping_to_guest_reattached ok rtt_avg_ms="$(echo "$out" | awk -F/ '/^rtt/{print $5}')"
echo go > "/dev/tcp/$LAB_GUEST_IP/7000" || lab_fail "dom0 cannot reach the guest's TCP port 7000 on its re-attached NIC"

lab_wait_console "$name" 'LAB-GUEST-DONE' 300
lab_guest_relay "$name"
[ "$(lab_guest_verdict "$name")" = PASS ] || { lab_tail_console "$name"; lab_ours_log_tail; lab_fail "guest verdict: $(lab_guest_verdict "$name")"; }
# Exactly one worker death: the SIGKILL above. A reboot or a detach ends a worker or a device
# cleanly; any other death is a crash the supervisor's restart would otherwise hide.
deaths=$(grep -c 'died (' "$LAB_SERVICE_LOG" || true)
lab_result dom0.worker_deaths "$deaths" expected=1
[ "$deaths" -eq 1 ] || { lab_ours_log_tail; lab_fail "$deaths worker deaths, expected only the one SIGKILL"; }
lab_destroy_guest "$name"
lab_ours_gone "$domid"
