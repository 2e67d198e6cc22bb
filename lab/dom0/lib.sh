# Helpers for scenarios running inside dom0 (sourced by /init and before every scenario).
# Output goes to dom0's console, which is the emulated machine's serial port, which lab/run
# reads: "LAB-RESULT: key value..." lines are collected as figures, "LAB-FAIL: why" explains a
# failure, "LAB-NOTE: ..." is progress shown live.
# shellcheck shell=bash

LAB_DOM0_IP=169.254.0.1
LAB_GUEST_IP=169.254.0.2
LAB_GUEST_KERNEL=/lab/guest/vmlinuz
LAB_GUEST_RAMDISK=/run/lab/guest.cpio
LAB_PAYLOAD=/opt/payload
LAB_CONSOLE_DIR=/var/log/xen/console

lab_result() { echo "LAB-RESULT: $*"; }
lab_note() { echo "LAB-NOTE: $*"; }
lab_fail() { echo "LAB-FAIL: $*"; exit 1; }

# lab_wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND once a second until it succeeds;
# returns 1 (after saying what it waited for) when the time is up.
lab_wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs)) bound=()
  # Each poll bounded too: a xenstore client blocks forever once xenstored is gone.
  [ "$(type -t "$1")" != file ] || bound=(timeout 30)
  until "${bound[@]}" "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$end" ]; then echo "LAB-FAIL: timed out after ${secs}s waiting for $what"; return 1; fi
    sleep 1
  done
}

# lab_guest_cfg NAME GUEST_SCRIPT DISKSPEC VIFSPEC [lab.key=value ...]
# Writes an xl config for a PV guest running the lab kernel and initramfs and prints its path.
# GUEST_SCRIPT names /lab/scenarios/GUEST_SCRIPT.guest.sh inside the guest. DISKSPEC and
# VIFSPEC are one xl disk / vif spec each, or "" for none. The lab.* words reach the guest's
# script as LAB_* environment variables (lab.size_mb=8 -> LAB_SIZE_MB=8).
lab_guest_cfg() {
  local name=$1 script=$2 disk=$3 vif=$4; shift 4
  local cfg=/run/lab/$name.cfg
  {
    echo "name = \"$name\""
    echo 'type = "pv"'
    echo "kernel = \"$LAB_GUEST_KERNEL\""
    echo "ramdisk = \"$LAB_GUEST_RAMDISK\""
    echo "extra = \"console=hvc0 quiet lab.guest=$script $*\""
    echo 'memory = 512'
    echo 'vcpus = 1'
    echo 'on_crash = "preserve"'
    [ -z "$disk" ] || echo "disk = [ '$disk' ]"
    [ -z "$vif" ] || echo "vif = [ '$vif' ]"
  } > "$cfg"
  echo "$cfg"
}

# lab_create_guest CFG: xl create, bounded (libxl's own waits add up to ~50 s at worst).
lab_create_guest() {
  local cfg=$1 log=/run/lab/$(basename "$1" .cfg).create.log
  if ! timeout 120 xl create "$cfg" > "$log" 2>&1; then
    sed 's/^/LAB-DIAG: xl create: /' "$log"
    lab_fail "xl create $cfg failed"
  fi
}

# Bounded: without xenstored, xl falls back to /dev/xen/xenbus and waits forever.
lab_domid() { timeout 20 xl domid "$1" 2>/dev/null; }

# lab_xenstored_alive: xenstored still runs. Everything (xl, our backends, the guest's devices)
# depends on it; when it dies a scenario can only hang, so waits check it and fail at once.
lab_xenstored_alive() { kill -0 "$(cat /run/xenstored.pid 2>/dev/null)" 2>/dev/null; }

# lab_user_crashes: the user-space crashes dom0's kernel logged ("segfault at", "traps:" lines).
# No test here provokes one, so any is a fault of the machine or of the program that crashed.
lab_user_crashes() { dmesg | grep -aE ' segfault at |traps: .* (trap|general protection)' ; }
lab_console_log() { echo "$LAB_CONSOLE_DIR/guest-$1.log"; }

# lab_wait_console NAME REGEX SECONDS: waits for a line in the guest's console log; fails
# early if the guest is gone, and shows the log's tail either way.
lab_wait_console() {
  local name=$1 re=$2 secs=$3 log; log=$(lab_console_log "$1")
  local end=$((SECONDS + secs)) mark=/run/lab/$name.console-shown misses=0
  until grep -aqE "$re" "$log" 2>/dev/null; do
    # Progress, live: the guest's figures and its kernel's complaints, as they appear (the
    # host shows LAB-NOTE lines at once; a hang is then visible while it happens). The mark
    # file remembers what was shown across calls.
    lab_console_progress "$name" "$log" "$(cat "$mark" 2>/dev/null || echo 0)" > "$mark.new" && mv "$mark.new" "$mark"
    # Gone only after 3 misses in a row: under load `xl domid` failed once while the guest was
    # alive and running (xl list showed it), which used to end a passing smoke run as FAIL.
    lab_xenstored_alive || { lab_tail_console "$name"; lab_fail "xenstored died while waiting for /$re/ from guest $name"; }
    if lab_domid "$name" >/dev/null; then misses=0; else misses=$((misses + 1)); fi
    if [ "$misses" -ge 3 ]; then
      grep -aqE "$re" "$log" 2>/dev/null && return 0
      lab_tail_console "$name"; lab_fail "guest $name ended before printing /$re/"
    fi
    if [ "$SECONDS" -ge "$end" ]; then
      lab_tail_console "$name"; lab_fail "guest $name did not print /$re/ within ${secs}s"
    fi
    sleep 1
  done
}

# lab_console_progress NAME LOG SHOWN: prints the interesting console lines after line SHOWN as
# LAB-NOTE, and echoes the new line count on fd 1 last (callers keep it).
lab_console_progress() {
  local n; n=$(wc -l < "$2" 2>/dev/null || echo 0)
  if [ "$n" -gt "$3" ]; then
    sed -n "$(($3 + 1)),${n}p" "$2" | tr -d '\r' \
      | grep -aE 'LAB-|blkfront|netfront|xvda|eth0|BUG|WARN|error|fail' \
      | sed -e 's/LAB-RESULT:/result:/' -e "s/^/LAB-NOTE: guest $1: /" >/dev/console   # figures are relayed once, at the end
  fi
  echo "$n"
}

lab_tail_console() { tail -n 40 "$(lab_console_log "$1")" 2>/dev/null | tr -d '\r' | sed "s/^/LAB-DIAG: guest $1: /"; }

# lab_guest_relay NAME: re-emits the guest's LAB-RESULT lines on dom0's console (the only
# channel back to the host), so they are collected with dom0's own.
lab_guest_relay() { grep -a 'LAB-RESULT:' "$(lab_console_log "$1")" | tr -d '\r' | sed 's/.*LAB-RESULT:/LAB-RESULT:/'; }

# lab_guest_verdict NAME: PASS or FAIL as printed by the guest's /init (empty if none yet).
lab_guest_verdict() {
  grep -a 'LAB-GUEST-VERDICT:' "$(lab_console_log "$1")" 2>/dev/null | tr -d '\r' | tail -n1 | awk '{print $NF}'
}

lab_destroy_guest() { timeout 60 xl destroy "$1" >/dev/null 2>&1 || true; }

# What a failing run prints so the host log alone explains it.
lab_diagnostics() {
  local f
  for f in "$LAB_CONSOLE_DIR"/guest-*.log; do
    [ -f "$f" ] || continue
    tail -n 60 "$f" | tr -d '\r' | sed "s|^|LAB-DIAG: $(basename "$f"): |"
  done
  for f in /var/log/xen/xl-*.log; do
    [ -f "$f" ] && tail -n 20 "$f" | sed "s|^|LAB-DIAG: $(basename "$f"): |"
  done
  # The project's service, when a scenario ran it (dom0/ours.sh): its last words.
  [ -f /run/lab/xen-backends.log ] && tail -n 40 /run/lab/xen-backends.log | sed 's/^/LAB-DIAG: xen-backends: /'
  lab_xenstored_alive || echo "LAB-DIAG: xenstored is NOT running"
  timeout 20 xl list 2>&1 | sed 's/^/LAB-DIAG: xl list: /'
  ps -eo pid,stat,etimes,args 2>/dev/null | grep -aE 'xen-backends|xenstored|xl |fio|iperf' | grep -v grep | sed 's/^/LAB-DIAG: ps: /'
  lab_user_crashes | tail -n 10 | sed 's/^/LAB-DIAG: crash: /'
  dmesg | tail -n 20 | sed 's/^/LAB-DIAG: dmesg: /'
  # Xen's own log (xl dmesg reads it by hypercall; bounded in case xl hangs on xenstore).
  timeout 20 xl dmesg 2>&1 | tail -n 30 | sed 's/^/LAB-DIAG: xl dmesg: /'
}
