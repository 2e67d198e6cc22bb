# Scenario: a guest on our backends is moved while it works. The guest (migrate.guest.sh) runs
# fio --verify on its disk and iperf3 to dom0 back to back; dom0 pings it every 0.2 s. Then:
#   1. `xl save` + `xl restore` (LAB_SAVES, default 1),
#   2. `xl migrate` to this same host (LAB_MIGRATIONS, default 3): xl's -s "" makes the "host"
#      argument the whole receive command, so `xl migrate-receive` runs here instead of over ssh.
# After every move: a new domid, both devices Connected on a new worker, and of the old
# instance no worker, no tap, no gntdev mapping, no backend/error/domain/libxl node left; the
# network pause is measured from dom0's ping timestamps. At the end fio must have had 0 errors
# and 0 verify failures in every run, and no worker may have died.
. /lab/ours.sh
: "${LAB_SAVES:=1}" "${LAB_MIGRATIONS:=3}"
out=
name=mig
iperf3 -s -D -B "$LAB_DOM0_IP" --logfile /run/lab/iperf3.log || lab_fail "iperf3 server did not start"
lab_ours_start
img=$(lab_ours_image 64)
cfg=$(lab_guest_cfg "$name" migrate "$(lab_ours_disk "$img")" "$LAB_OURS_VIF" loglevel=7)
# Same-host migration holds two copies of the guest at once; the emulated machine leaves Xen
# ~900 MB beside dom0's 2 GB, so the guest gets less than lab_guest_cfg's 512 MB.
sed -i 's/^memory = .*/memory = 320/' "$cfg"
# The save file holds the guest's RAM; dom0's root filesystem has too little room left for it.
mkdir -p /run/lab/save
mount -t tmpfs -o size=640m tmpfs /run/lab/save || lab_fail "cannot mount a tmpfs for the save file"
lab_create_guest "$cfg"
domid=$(lab_domid "$name")
lab_ours_connected "$domid" vbd 51712
lab_ours_connected "$domid" vif 0

# The console log follows the domain's name, and an incoming migration is first named
# "<name>--incoming": read every log of this guest.
mig_console() { cat "$LAB_CONSOLE_DIR"/guest-"$name"*.log 2>/dev/null | tr -d '\r'; }
mig_wait_console() {
  local re=$1 secs=$2 end=$((SECONDS + $2))
  until mig_console | grep -aqE "$re"; do
    [ "$SECONDS" -lt "$end" ] || { mig_console | tail -n 40 | sed 's/^/LAB-DIAG: guest: /'; lab_ours_log_tail; lab_fail "guest did not print /$re/ within ${secs}s"; }
    sleep 1
  done
}
fio_runs_ok() { mig_console | grep -ac 'LAB-GUEST: fio-run [0-9]* ok' || true; }

mig_wait_console 'LAB-GUEST: load-started' 480
ping -D -n -i 0.2 -W 1 "$LAB_GUEST_IP" > /run/lab/ping.log 2>&1 &
ping_pid=$!
sleep 5

# pause_since T0: the longest silence between two ping replies at or after T0 (epoch s), in ms.
pause_since() {
  sed -n 's/^\[\([0-9.]*\)\].*bytes from.*/\1/p' /run/lab/ping.log \
    | awk -v t0="$1" '$1 >= t0 - 1 { if (prev != "" && $1 - prev > gap) gap = $1 - prev; prev = $1 }
                      END { printf "%d", gap * 1000 }'
}
last_reply() { sed -n 's/^\[\([0-9.]*\)\].*bytes from.*/\1/p' /run/lab/ping.log | tail -n 1; }

# old_instance_gone OLD NEW: nothing of domain OLD is left in dom0, and NEW has exactly one worker.
old_instance_gone() {
  local old=$1 new=$2 p maps
  lab_ours_gone "$old"
  for p in "/local/domain/$old" "/libxl/$old"; do
    ! xenstore-exists "$p" || { xenstore-ls -f "$p" | head -n 20 | sed 's/^/LAB-DIAG: left: /'; lab_fail "$p left behind"; }
  done
  [ "$(pgrep -fc 'xen-backends worker')" -eq 1 ] || { pgrep -fa 'xen-backends worker' | sed 's/^/LAB-DIAG: /'; lab_fail "workers other than domain $new's are running"; }
  # Grant mappings live in the process that mapped them: the supervisor must hold none, the new
  # worker only its own (the old worker, which held the old ones, is gone: checked above).
  maps=$(grep -c gntdev "/proc/$LAB_SERVICE_PID/maps" || true)
  [ "$maps" -eq 0 ] || lab_fail "the supervisor holds $maps gntdev mappings"
  lab_result "dom0.old_instance_gone" domid="$old" new_worker_gntdev_maps="$(grep -c gntdev "/proc/$(lab_ours_worker "$new")/maps" || true)"
}

# xl_step SECS CMD...: runs an xl command, output in $out. Emulated dom0 processes have been
# seen to die of random segfaults in every lab run today (bash, sed, sleep, xenstored, in all
# scenarios, ours or not); a step that failed without printing anything never got to run xl,
# so it is retried once, and said so.
xl_step() {
  local secs=$1; shift
  out=$(timeout "$secs" "$@" 2>&1) && return 0
  [ -z "$out" ] || return 1
  lab_note "retrying '$*': it failed without output (dmesg: $(dmesg | grep -a segfault | tail -n 1 | cut -c1-120))"
  lab_result dom0.step_retried "$1 $2"
  out=$(timeout "$secs" "$@" 2>&1)
}

# move KIND N: one save+restore or migration under load, then every check.
moves=0
move() {
  local kind=$1 n=$2 old new t0 t1 fio_before
  old=$(lab_domid "$name")
  fio_before=$(fio_runs_ok)
  t0=$(date +%s.%N)
  if [ "$kind" = save ]; then
    xl_step 300 xl save "$name" /run/lab/save/mig.save || { echo "$out" | sed 's/^/LAB-DIAG: xl save: /'; lab_ours_log_tail; lab_fail "xl save failed"; }
    lab_result "dom0.save_${n}_bytes" "$(stat -c %s /run/lab/save/mig.save)"
    xl_step 300 xl restore "$cfg" /run/lab/save/mig.save || { echo "$out" | sed 's/^/LAB-DIAG: xl restore: /'; lab_ours_log_tail; lab_fail "xl restore failed"; }
    rm -f /run/lab/save/mig.save
  else
    xl_step 400 xl migrate -s "" "$name" "xl migrate-receive" || { echo "$out" | tail -n 30 | sed 's/^/LAB-DIAG: xl migrate: /'; lab_ours_log_tail; lab_fail "xl migrate failed"; }
  fi
  t1=$(date +%s.%N)
  new=$(lab_domid "$name")
  [ -n "$new" ] && [ "$new" != "$old" ] || lab_fail "after $kind $n the guest has domid '${new}' (was $old)"
  lab_ours_connected "$new" vbd 51712
  lab_ours_connected "$new" vif 0
  lab_wait_for 120 "ping replies from the guest after $kind $n" sh -c "[ \"\$(sed -n 's/^\[\([0-9]*\).*bytes from.*/\1/p' /run/lab/ping.log | tail -n 1)\" -gt ${t1%.*} ]" \
    || { tail -n 5 /run/lab/ping.log | sed 's/^/LAB-DIAG: ping: /'; lab_ours_log_tail; exit 1; }
  old_instance_gone "$old" "$new"
  moves=$((moves + 1))
  grep -aE "domid $old\b|/$old/" "$LAB_SERVICE_LOG" | tail -n 8 | sed "s/^/LAB-NOTE: service (old $old): /"
  lab_result "dom0.${kind}_$n" old="$old" new="$new" secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')" \
    ping_pause_ms="$(pause_since "$t0")"
  # The load goes on: one more fio --verify run completes on the new backends before the next move.
  lab_wait_for 300 "a fio --verify run to finish after $kind $n" sh -c "[ \$(cat $LAB_CONSOLE_DIR/guest-$name*.log | grep -ac 'LAB-GUEST: fio-run [0-9]* ok') -gt $fio_before ]" \
    || { mig_console | tail -n 30 | sed 's/^/LAB-DIAG: guest: /'; lab_ours_log_tail; exit 1; }
}

i=1; while [ "$i" -le "$LAB_SAVES" ]; do move save "$i"; i=$((i + 1)); done
i=1; while [ "$i" -le "$LAB_MIGRATIONS" ]; do move migrate "$i"; i=$((i + 1)); done
lab_result dom0.moves "$moves" saves="$LAB_SAVES" migrations="$LAB_MIGRATIONS"

domid=$(lab_domid "$name")
echo stop > "/dev/tcp/$LAB_GUEST_IP/7001" || lab_fail "cannot reach the guest's TCP port 7001 after the moves"
mig_wait_console 'LAB-GUEST-DONE' 600
kill -INT "$ping_pid" 2>/dev/null; sleep 1   # SIGINT: ping prints its summary
lab_result dom0.ping "$(tail -n 4 /run/lab/ping.log | grep -a 'packets transmitted' || grep -c 'bytes from' /run/lab/ping.log)"
mig_console | grep -a 'LAB-RESULT:' | sed 's/.*LAB-RESULT:/LAB-RESULT:/'
deaths=$(grep -c 'died (' "$LAB_SERVICE_LOG" || true)
lab_result dom0.worker_deaths "$deaths"
[ "$deaths" -eq 0 ] || { lab_ours_log_tail; lab_fail "a xen-backends worker died during the moves"; }
verdict=$(mig_console | grep -a 'LAB-GUEST-VERDICT:' | tail -n 1 | awk '{print $NF}')
[ "$verdict" = PASS ] || { mig_console | tail -n 40 | sed 's/^/LAB-DIAG: guest: /'; lab_fail "guest verdict: ${verdict:-none}"; }
lab_destroy_guest "$name"
lab_ours_gone "$domid"
