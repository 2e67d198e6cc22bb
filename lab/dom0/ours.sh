# Helpers for scenarios that run the PROJECT's backends (the `xen-backends` service from the
# payload) instead of Linux's: start the supervisor, run one guest through create -> work ->
# destroy, and check what each step must leave behind. Sourced by those scenarios after lib.sh.
# shellcheck shell=bash

LAB_SERVICE=$LAB_PAYLOAD/xen-backends/xen-backends
LAB_HOTPLUG=$LAB_PAYLOAD/block-xen-backends
LAB_SERVICE_LOG=/run/lab/xen-backends.log

# lab_ours_start: starts `xen-backends serve` (default config: vbd + vif, or $LAB_OURS_CONFIG) in the background and
# waits until its control socket answers `status`, i.e. the first scan is done. Must run
# before `xl create`: libxl gives a backend only 10 s to reach InitWait.
lab_ours_start() {
  [ -x "$LAB_SERVICE" ] || lab_fail "no $LAB_SERVICE: run lab/run --payload \"\$(lab/host/payload.sh)\" ..."
  # The point is to prove OUR backends: Linux's must not be there to claim the devices.
  ! lsmod | grep -qE '^xen_(blk|net)back' || lab_fail "a kernel backend module is loaded"
  local t0=$SECONDS
  # LAB_OURS_CONFIG: a config.json text for this run (otherwise the built-in defaults).
  local config=()
  if [ -n "${LAB_OURS_CONFIG:-}" ]; then
    echo "$LAB_OURS_CONFIG" > /run/lab/xen-backends.json
    config=(--config /run/lab/xen-backends.json)
    lab_result dom0.service_config "$(tr -d ' \n' < /run/lab/xen-backends.json)"
  fi
  "$LAB_SERVICE" serve "${config[@]}" > "$LAB_SERVICE_LOG" 2>&1 &
  LAB_SERVICE_PID=$!
  lab_wait_for 120 "xen-backends serve to answer status" "$LAB_SERVICE" status || { lab_ours_log_tail; exit 1; }
  kill -0 "$LAB_SERVICE_PID" 2>/dev/null || { lab_ours_log_tail; lab_fail "xen-backends serve exited"; }
  lab_result dom0.service_ready_s $((SECONDS - t0)) pid="$LAB_SERVICE_PID"
}

lab_ours_log_tail() { tail -n "${1:-40}" "$LAB_SERVICE_LOG" 2>/dev/null | sed 's/^/LAB-DIAG: xen-backends: /'; }

# lab_ours_worker DOMID: the pid of that guest's worker process (empty if none). The supervisor
# exec's `xen-backends worker --domid N ...`.
lab_ours_worker() { pgrep -f "xen-backends worker --domid $1( |\$)" | head -n1; }

# lab_ours_sandbox DOMID: the guest's worker, serving, runs with no_new_privs and its seccomp
# filter (mode 2) on every thread; its effective capabilities are reported.
lab_ours_sandbox() {
  local pid t modes
  pid=$(lab_ours_worker "$1")
  [ -n "$pid" ] || lab_fail "no worker for domain $1 to inspect"
  modes=$(for t in /proc/"$pid"/task/*; do awk '$1 == "Seccomp:" { print $2 }' "$t/status"; done | sort | uniq -c | awk '{ printf "%s%sx%s", sep, $2, $1; sep = "," }')
  lab_result dom0.worker_sandbox "seccomp_modes=$modes" \
    "no_new_privs=$(awk '$1 == "NoNewPrivs:" { print $2 }' /proc/"$pid"/status)" \
    "cap_eff=$(awk '$1 == "CapEff:" { print $2 }' /proc/"$pid"/status)"
  # One mode only (no comma), and it is 2.
  case $modes in 2x*) [ "${modes#*,}" = "$modes" ] && return 0 ;; esac
  lab_ours_log_tail; lab_fail "worker $pid has threads without its seccomp filter: $modes"
}

# lab_ours_image MB: a fresh sparse raw image, the disk target.
lab_ours_image() { rm -f /var/lib/lab/disk.img; truncate -s "${1}M" /var/lib/lab/disk.img; echo /var/lib/lab/disk.img; }

# lab_ours_disk IMG: the xl disk spec for our backend (target= last: it eats the rest).
lab_ours_disk() { echo "format=raw, vdev=xvda, access=rw, script=$LAB_HOTPLUG, target=$1"; }
LAB_OURS_VIF="mac=00:16:3e:00:00:01, bridge=xenbr0"

# lab_ours_connected DOMID KIND DEVID: backend state must be 4 and served by our worker.
# Bounded by LAB_CONNECT_TIMEOUT (300 s): right after `xl create` this includes the guest's
# kernel boot up to its frontend's connect, which took 2 min at load average 27 (60 s failed a
# lifecycle run whose guest was merely slow).
lab_ours_connected() {
  local be=/local/domain/0/backend/$2/$1/$3 st
  # sh -c: the state must be re-read on every poll, not substituted once at the call.
  lab_wait_for "${LAB_CONNECT_TIMEOUT:-300}" "$be to reach Connected" sh -c "[ \"\$(xenstore-read $be/state)\" = 4 ]" || {
    lab_result "dom0.${2}_state" "$(xenstore-read "$be/state" 2>&1)"; lab_ours_log_tail; exit 1; }
  st=$(xenstore-read "$be/state")
  lab_result "dom0.${2}_backend" state="$st" hotplug-status="$(xenstore-read "$be/hotplug-status" 2>&1)"
}

# lab_ours_gone DOMID: after xl destroy, nothing of the guest may remain: no worker, no tap,
# no backend or error nodes (the supervisor removes them on @releaseDomain).
lab_ours_gone() {
  local d=$1
  # Bounds sized for load: at load average 27 the supervisor stopped a rebooted guest's worker 35 s
  # after its last device was removed.
  lab_wait_for 120 "worker of domain $d to exit" sh -c "! pgrep -f 'xen-backends worker --domid $d( |\$)'" || { lab_ours_log_tail; exit 1; }
  lab_wait_for 60 "every tap vif$d.* to disappear" sh -c "! ip -o link show | grep -q ': vif$d\.'" || exit 1
  local k
  for k in vbd vif; do
    lab_wait_for 60 "backend/$k/$d to be removed" sh -c "! xenstore-exists /local/domain/0/backend/$k/$d" || {
      xenstore-ls -f "/local/domain/0/backend/$k/$d" | sed 's/^/LAB-DIAG: left: /'; exit 1; }
    ! xenstore-exists "/local/domain/0/error/backend/$k/$d" || lab_fail "error/backend/$k/$d left behind"
  done
  kill -0 "$LAB_SERVICE_PID" 2>/dev/null || { lab_ours_log_tail; lab_fail "xen-backends serve died"; }
  lab_result dom0.destroy_cleanup ok domid="$d"
}

# lab_ours_guest NAME GUESTSCRIPT DISKSPEC VIFSPEC [lab.k=v ...]: the whole life of one guest on
# our backends. With a vif the guest prints "LAB-GUEST: net-up", dom0 pings it and releases it
# through TCP port 7000 (so measurements never overlap); then its verdict decides.
lab_ours_guest() {
  local name=$1 script=$2 disk=$3 vif=$4; shift 4
  local cfg domid t0=$SECONDS
  # loglevel=7 after lab_guest_cfg's "quiet": the guest's kernel messages (blkfront/netfront
  # complaints about our answers) land in its console log, which diagnostics show.
  cfg=$(lab_guest_cfg "$name" "$script" "$disk" "$vif" loglevel=7 "$@")
  lab_create_guest "$cfg"
  domid=$(lab_domid "$name")
  lab_result dom0.guest_create_s $((SECONDS - t0)) domid="$domid"
  [ -n "$(lab_ours_worker "$domid")" ] || { lab_ours_log_tail; lab_fail "no xen-backends worker for domain $domid"; }
  [ -z "$disk" ] || lab_ours_connected "$domid" vbd 51712
  if [ -n "$vif" ]; then
    lab_wait_console "$name" 'LAB-GUEST: net-up' 480
    lab_ours_connected "$domid" vif 0
    # What netfront negotiated with us, as the backend sees it.
    lab_result dom0.vif_frontend_features "$(for f in feature-gso-tcpv4 feature-no-csum-offload feature-rx-notify multi-queue-num-queues; do
      printf '%s=%s ' "$f" "$(xenstore-read "/local/domain/$domid/device/vif/0/$f" 2>/dev/null || echo -)"; done)"
    local out
    out=$(ping -c 5 -i 0.2 -W 2 "$LAB_GUEST_IP") || { echo "$out"; lab_ours_log_tail; lab_fail "dom0 cannot ping the guest"; }
    lab_result dom0.ping_to_guest ok rtt_avg_ms="$(echo "$out" | awk -F/ '/^rtt/{print $5}')"
    echo go > "/dev/tcp/$LAB_GUEST_IP/7000" || lab_fail "dom0 cannot reach the guest's TCP port 7000"
  fi
  lab_ours_sandbox "$domid"
  lab_wait_console "$name" 'LAB-GUEST-DONE' 900
  lab_guest_relay "$name"
  # The worker must have served the whole run: a crash would have been hidden by the restart.
  local deaths; deaths=$(grep -c 'died (' "$LAB_SERVICE_LOG" || true)
  lab_result dom0.worker_deaths "$deaths"
  [ "$deaths" -eq 0 ] || { lab_ours_log_tail; lab_fail "a xen-backends worker died during the run"; }
  [ "$(lab_guest_verdict "$name")" = PASS ] || { lab_tail_console "$name"; lab_ours_log_tail; lab_fail "guest verdict: $(lab_guest_verdict "$name")"; }
  lab_result dom0.guest_s $((SECONDS - t0))
  lab_destroy_guest "$name"
  lab_ours_gone "$domid"
}
