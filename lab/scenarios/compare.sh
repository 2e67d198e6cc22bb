# Scenario: the same fio and iperf3 jobs (compare.guest.sh) against three backends, in one boot:
#   ours    the project's xen-backends (vbd + vif), kernel backends absent
#   kernel  Linux's xen-blkback (loop device over the same image) + xen-netback
#   qdisk   QEMU's qdisk (Debian qemu-system-xen; libxl spawns xen-qemu-system-i386 -M xenpv)
# There is no QEMU NIC to compare for a PV guest: QEMU 7.2 still carries a legacy "qnic"
# backend, but libxl 4.17 never creates one (every PV vif is backend/vif, the kernel netback's
# or ours); the run records that as cmp.qnic_strings. So the NIC compares ours with netback.
#
# Each backend gets its own guest (xl create ... xl destroy), not detach/attach on one guest:
# every phase then starts from the same state (a fresh blkfront/netfront negotiation, an empty
# guest page cache, no leftovers of the previous backend's teardown), swapping the kernel
# modules in and out never races a half-detached device, and it is the create/destroy path the
# other scenarios already prove. The cost is a guest boot per phase (~40 s under TCG).
# The host's load drifts a lot during a run (the same job varied 8x within one guest), so the
# backends take turns: LAB_CMP_ROUNDS rounds of ours -> kernel -> qdisk, each guest running the
# jobs LAB_CMP_REPS times, and each ratio is the median over rounds of that round's ratio.
# Kernel backends are loaded for their phase and unloaded after it (ours refuses to start
# beside them).
# Exit non-zero when a phase fails or a median is missing.
. /lab/ours.sh
: "${LAB_CMP_ROUNDS:=3}" "${LAB_CMP_REPS:=1}" "${LAB_CMP_FIO_SECS:=10}" "${LAB_CMP_IPERF_SECS:=10}" "${LAB_CMP_DISK_MB:=128}"
cmp_results=/run/lab/compare.txt
cmp_img=/var/lib/lab/compare.img
cmp_args="lab.reps=$LAB_CMP_REPS lab.fio_secs=$LAB_CMP_FIO_SECS lab.iperf_secs=$LAB_CMP_IPERF_SECS"
cmp_disk_jobs="randread_4k randwrite_4k read_1m write_1m"
cmp_net_jobs="iperf3_tx iperf3_rx"
# What one guest's jobs take, doubled for load, plus boot: the bound on waiting for it.
cmp_guest_secs=$((300 + 2 * LAB_CMP_REPS * (4 * (LAB_CMP_FIO_SECS + 5) + 2 * (LAB_CMP_IPERF_SECS + 3))))
: > "$cmp_results"

# cmp_collect NAME ROUND: the guest's per-run figures into the file, as
# "cmp.<backend>.<job> VALUE round=ROUND" (a guest's repetitions all belong to its round).
cmp_collect() {
  lab_guest_relay "$1" | sed -n "s/^LAB-RESULT: \(cmp\.[a-z]*\.[a-z0-9_]* [0-9.e+]*\) rep=[0-9]*\$/\1 round=$2/p" >> "$cmp_results"
}

# cmp_wait_state PATH SECS: backend state 4; the state is re-read on every poll (see lab_wait_for's note in the README).
cmp_wait_state() { lab_wait_for "$2" "$1 to reach Connected" sh -c "[ \"\$(xenstore-read $1/state 2>/dev/null)\" = 4 ]"; }

# cmp_guest NAME BACKEND DISKSPEC VIFSPEC DISKKIND ROUND: one guest on a non-project backend; DISKKIND
# is the backend directory libxl writes for the disk (vbd for blkback, qdisk for QEMU).
cmp_guest() {
  local name=$1 backend=$2 disk=$3 vif=$4 kind=$5 round=$6 cfg domid net=0 t0=$SECONDS out
  [ -z "$vif" ] || net=1
  cfg=$(lab_guest_cfg "$name" compare "$disk" "$vif" loglevel=7 "lab.backend=$backend lab.net=$net $cmp_args")
  # Bounded more loosely than lab_create_guest: with a qdisk disk libxl first starts QEMU and
  # waits for it, which under TCG on a loaded host takes a while.
  if ! LIBXL_DEVICE_MODEL_START_TIMEOUT=240 timeout 300 xl create "$cfg" > "/run/lab/$name.create.log" 2>&1; then
    sed 's/^/LAB-DIAG: xl create: /' "/run/lab/$name.create.log"
    tail -n 20 /var/log/xen/qemu-dm-"$name".log 2>/dev/null | sed 's/^/LAB-DIAG: qemu: /'
    lab_fail "xl create $cfg failed"
  fi
  domid=$(lab_domid "$name")
  lab_result "dom0.$backend.guest_create_s" $((SECONDS - t0)) domid="$domid"
  cmp_wait_state "/local/domain/0/backend/$kind/$domid/51712" 120 || { lab_tail_console "$name"; exit 1; }
  if [ "$net" = 1 ]; then
    lab_wait_console "$name" 'LAB-GUEST: net-up' 480
    cmp_wait_state "/local/domain/0/backend/vif/$domid/0" 60 || exit 1
    out=$(ping -c 3 -i 0.2 -W 2 "$LAB_GUEST_IP") || { echo "$out"; lab_fail "dom0 cannot ping the $backend guest"; }
    echo go > "/dev/tcp/$LAB_GUEST_IP/7000" || lab_fail "dom0 cannot reach the guest's TCP port 7000"
  fi
  cmp_check_"$backend" "$domid"
  lab_wait_console "$name" 'LAB-GUEST-DONE' "$cmp_guest_secs"
  lab_guest_relay "$name"
  [ "$(lab_guest_verdict "$name")" = PASS ] || { lab_tail_console "$name"; lab_fail "$backend guest verdict: $(lab_guest_verdict "$name")"; }
  cmp_collect "$name" "$round"
  lab_result "dom0.$backend.guest_s" $((SECONDS - t0))
  lab_destroy_guest "$name"
  lab_wait_for 60 "backend/$kind/$domid to be removed" sh -c "! xenstore-exists /local/domain/0/backend/$kind/$domid" || exit 1
}

# Proof that the phase measured what it claims to.
cmp_check_kernel() {
  lsmod | grep -q '^xen_blkback' && lsmod | grep -q '^xen_netback' || lab_fail "kernel backends not loaded"
  ! pgrep -f '[x]en-backends (serve|worker)' >/dev/null || lab_fail "xen-backends still running in the kernel phase"
  lab_result dom0.kernel.backends vbd="$(xenstore-read "/local/domain/0/backend/vbd/$1/51712/state")" \
    vif="$(xenstore-read "/local/domain/0/backend/vif/$1/0/state")" \
    persistent="$(xenstore-read "/local/domain/0/backend/vbd/$1/51712/feature-persistent" 2>/dev/null || echo -)"
}
cmp_check_qdisk() {
  local qemu; qemu=$(pgrep -f "xen-qemu-system-i386.*-xen-domid $1 " | head -n1)
  [ -n "$qemu" ] || lab_fail "no xen-qemu-system-i386 for domain $1"
  ! xenstore-exists "/local/domain/0/backend/vbd/$1" || lab_fail "the qdisk guest has a backend/vbd node: not QEMU's disk"
  lab_result dom0.qdisk.backend state="$(xenstore-read "/local/domain/0/backend/qdisk/$1/51712/state")" qemu_pid="$qemu" \
    params="$(xenstore-read "/local/domain/0/backend/qdisk/$1/51712/params")"
}

# cmp_stop_service: ends `xen-backends serve` (SIGTERM: workers stop, as under systemd) so the
# kernel backends can take backend/vbd and backend/vif without a competitor.
cmp_stop_service() {
  local pid=$LAB_SERVICE_PID
  kill -TERM "$pid" 2>/dev/null || true
  # A child that exited stays a zombie until waited for: kill -0 alone would say "alive".
  lab_wait_for 30 "xen-backends serve to exit" sh -c "! kill -0 $pid || grep -q '^State:.*Z' /proc/$pid/status" || {
    lab_ours_log_tail; kill -KILL "$pid"; exit 1; }
  wait "$pid" 2>/dev/null || true
  # [x]: the pattern must not match the sh -c running it, whose command line contains it.
  lab_wait_for 30 "every xen-backends worker to exit" sh -c "! pgrep -f '[x]en-backends worker'" || exit 1
  lab_result dom0.service_stopped ok
}

# --- the shared disk image and the iperf3 server -------------------------------------------
# Random content, so no backend reads holes (cheaper than data on some paths). It lives on
# dom0's RAM-backed root file system, so the figures compare the backends' paths (rings,
# grants, notifications, copies, scheduling), not storage.
dd if=/dev/urandom of="$cmp_img" bs=1M count="$LAB_CMP_DISK_MB" status=none || lab_fail "cannot write $cmp_img"
iperf3 -s -D -B "$LAB_DOM0_IP" --logfile /run/lab/iperf3.log || lab_fail "iperf3 server did not start"
lab_result cmp.qnic_strings qemu="$(grep -ac qnic /usr/libexec/xen-qemu-system-i386)" \
  libxl="$(grep -ac qnic "$(readlink -f /usr/lib/x86_64-linux-gnu/libxenlight.so.4.17)")"

# --- one round: ours -> kernel -> qdisk ------------------------------------------------
cmp_round() {
  local r=$1
  lab_note "compare: round $r/$LAB_CMP_ROUNDS: ours"
  lab_ours_start
  lab_ours_guest "cmp-ours-$r" compare "$(lab_ours_disk "$cmp_img")" "$LAB_OURS_VIF" "lab.backend=ours lab.net=1 $cmp_args"
  cmp_collect "cmp-ours-$r" "$r"
  cmp_stop_service

  lab_note "compare: round $r/$LAB_CMP_ROUNDS: kernel"
  # xen-backends' install.sh puts /etc/modprobe.d/xen-backends.conf in place: "blacklist" (only
  # stops alias loads; names given here are explicit) and "install ... /bin/false" (stops
  # explicit loads too). --ignore-install bypasses the latter, so this works on a dom0 with it.
  [ ! -e /etc/modprobe.d/xen-backends.conf ] || lab_note "xen-backends modprobe.conf present: bypassed with --ignore-install"
  modprobe --ignore-install -a loop xen-blkback xen-netback || lab_fail "cannot load the kernel backends (and loop)"
  cmp_loop=$(losetup -f --show "$cmp_img") || lab_fail "losetup failed"
  cmp_guest "cmp-kernel-$r" kernel "format=raw, vdev=xvda, access=rw, target=$cmp_loop" "$LAB_OURS_VIF" vbd "$r"
  losetup -d "$cmp_loop" || true
  # Out again before our service comes back (lab_ours_start insists): nothing uses them now.
  lab_wait_for 30 "the kernel backends to unload" modprobe -r xen-blkback xen-netback || exit 1

  lab_note "compare: round $r/$LAB_CMP_ROUNDS: qdisk"
  cmp_guest "cmp-qdisk-$r" qdisk "format=raw, vdev=xvda, access=rw, backendtype=qdisk, target=$cmp_img" "" qdisk "$r"
}
r=1
while [ "$r" -le "$LAB_CMP_ROUNDS" ]; do cmp_round "$r"; r=$((r + 1)); done

# --- medians and ratios ------------------------------------------------------------------
# Per job: each backend's median over all its runs (context), and the ratios as the median
# over rounds of that round's ratio (ours_r / kernel_r): a round's three guests ran minutes
# apart, the rounds up to half an hour apart, so per-round ratios cancel most of the drift in
# the host's load. One line per job:
#   JOB OURS KERNEL QDISK OURS/KERNEL OURS/QDISK PER-ROUND-OURS/KERNEL PER-ROUND-OURS/QDISK N
cmp_summary() {
  awk -v jobs="$cmp_disk_jobs $cmp_net_jobs" -v rounds="$LAB_CMP_ROUNDS" '
    function median(list,   a, n, i, j, t) {
      n = split(list, a, " "); if (n == 0) return ""
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return (n % 2) ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function fmt(x) { return (x == "") ? "-" : sprintf("%.3g", x) }
    function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "" : a / b }
    { split($1, k, "."); sub(/^round=/, "", $3); v[k[2], k[3], $3] = v[k[2], k[3], $3] " " $2; all[k[2], k[3]] = all[k[2], k[3]] " " $2 }
    END {
      nj = split(jobs, J, " ")
      for (x = 1; x <= nj; x++) {
        j = J[x]; rk = ""; rq = ""; lk = ""; lq = ""
        for (r = 1; r <= rounds; r++) {
          a = ratio(median(v["ours", j, r]), median(v["kernel", j, r])); if (a != "") { rk = rk " " a; lk = lk (lk == "" ? "" : ",") sprintf("%.2f", a) }
          a = ratio(median(v["ours", j, r]), median(v["qdisk", j, r])); if (a != "") { rq = rq " " a; lq = lq (lq == "" ? "" : ",") sprintf("%.2f", a) }
        }
        n = split(all["ours", j], tmp, " ")
        printf "%s %s %s %s %s %s %s %s %d\n", j, fmt(median(all["ours", j])), fmt(median(all["kernel", j])), fmt(median(all["qdisk", j])),
          (rk == "") ? "-" : sprintf("%.2f", median(rk)), (rq == "") ? "-" : sprintf("%.2f", median(rq)), (lk == "") ? "-" : lk, (lq == "") ? "-" : lq, n
      }
    }' "$cmp_results"
}
missing=0
while read -r job ours kernel qdisk rk rq lk lq n; do
  case "$job" in *_4k) unit=IOPS ;; *_1m) unit=MiB/s ;; *) unit=Mbit/s ;; esac
  [ "$rk" != - ] || missing=1
  case "$job" in iperf3_*) ;; *) [ "$rq" != - ] || missing=1 ;; esac
  lab_result "cmp.ratio.$job" "ours/kernel=$rk" "ours/qdisk=$rq" "ours=$ours" "kernel=$kernel" "qdisk=$qdisk" \
    "unit=$unit" "n=$n" "rounds_ours/kernel=$lk" "rounds_ours/qdisk=$lq"
done < <(cmp_summary)
lab_result cmp.settings rounds="$LAB_CMP_ROUNDS" reps_per_guest="$LAB_CMP_REPS" fio_secs="$LAB_CMP_FIO_SECS" \
  iperf_secs="$LAB_CMP_IPERF_SECS" disk_mb="$LAB_CMP_DISK_MB"
[ "$missing" = 0 ] || lab_fail "a ratio is missing (see the cmp.ratio lines)"
