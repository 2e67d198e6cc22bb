#!/bin/bash
# Boots Xen + dom0 under QEMU (software CPU emulation, no network: -nic none) and follows the
# serial console until dom0 prints its verdict. Every stage has its own deadline, so a hung
# boot ends with a message naming the stage and the tail of the console log.
# Usage: boot.sh IMAGES_DIR DOM0_CPIO CONSOLE_LOG SCENARIO_TIMEOUT
# Exit: 0 when the console shows "LAB-VERDICT: ..." (PASS or FAIL: run decides), 2 otherwise.
set -euo pipefail
. "$(dirname "$0")/common.sh"
img=$1 cpio=$2 log=$3 scen_timeout=$4
case "$img$cpio" in *,*) lab_die "paths must not contain ',' (QEMU's -initrd list separator)";; esac

# Without smap/smep/pku/la57 dom0 crashes at its first instructions under TCG's "max" CPU.
# Without avx/avx2/fma/f16c: with them (new in QEMU 7.2's TCG) every first xen-backends worker
# (NativeAOT, many threads) died of heap corruption ("malloc(): corrupted top size") in 2 of 2
# runs, block and net alike, with io_uring or threads; without them none did. .NET then takes
# its SSE code paths. LAB_QEMU_CPU overrides the model (for experiments with CPU features).
# spec-ctrl=eager-fpu: TCG's "max" CPU says AMD, for which Xen 4.17 switches vCPUs' FPU/SSE state
# lazily (CR0.TS, restored on the first #NM). Under QEMU 7.2's TCG that corrupted user-space
# registers across domains: in the cold smoke run of 2026-11-24 (lazy) dom0's xenstore-read, sleep,
# bash (a command substitution run as a file name) and finally xenstored segfaulted within 100 s
# while the guest did I/O, and the run hung without xenstored. Eager switching saves and restores
# the state on every vCPU switch and never relies on #NM. LAB_XEN_ARGS adds to Xen's command line.
# LAB_XEN_IMAGE: another hypervisor binary than the cached Debian one (lab/run sets it for a
# scenario that asks for the shadow-paging build, see host/build-xen-shadow.sh).
xen_args="console=com1 dom0_mem=2048M,max:2048M loglvl=all guest_loglvl=all noreboot spec-ctrl=eager-fpu ${LAB_XEN_ARGS:-}"
qemu_cmd=(qemu-system-x86_64 -machine q35 -cpu "${LAB_QEMU_CPU:-max,-smap,-smep,-pku,-la57,-avx,-avx2,-fma,-f16c}" -m 3072 -smp 2
  -nographic -no-reboot -nic none
  -kernel "${LAB_XEN_IMAGE:-$img/xen}"
  -append "$xen_args"
  -initrd "$img/vmlinuz console=hvc0 earlyprintk=xen rdinit=/init,$cpio")
: > "$log"
"${qemu_cmd[@]}" < /dev/null > "$log" 2>&1 9>&- &
qemu=$!
# Progress lines from the scenario, shown live.
# --pid: tail ends with QEMU (killing the pipeline's last PID would leave tail running);
# 9>&-: it must not inherit lab/run's host-wide lock.
{ tail -n +1 -F --pid="$qemu" "$log" 2>/dev/null | grep -a --line-buffered -E 'LAB-(NOTE|FAIL|VERDICT|DOM0)' | sed -u 's/\r//' >&2; } 9>&- &
follower=$!
cleanup() {
  kill "$qemu" 2>/dev/null || true
  kill "$follower" 2>/dev/null || true
  wait "$qemu" 2>/dev/null || true
}
trap cleanup EXIT
# Killed from outside (CI's bound, ^C): still take QEMU down; bash runs EXIT traps only on exit.
trap 'exit 143' TERM INT HUP

# stage NAME REGEX SECONDS: waits for REGEX in the console log; gives up with diagnostics.
stage() {
  local name=$1 re=$2 secs=$3 end=$((SECONDS + $3))
  until grep -aqE "$re" "$log"; do
    if ! kill -0 "$qemu" 2>/dev/null; then
      sleep 1; grep -aqE "$re" "$log" && return 0
      lab_log "QEMU exited while waiting for: $name"; tail -n 40 "$log" | tr -d '\r' >&2; exit 2
    fi
    if [ "$SECONDS" -ge "$end" ]; then
      lab_log "TIMEOUT after ${secs}s waiting for: $name. Console tail:"
      tail -n 40 "$log" | tr -d '\r' >&2; exit 2
    fi
    sleep 1
  done
  lab_log "reached: $name (${SECONDS}s)"
}
SECONDS=0
# Deadlines are generous for 2 shared cores under TCG; measured times are ~5x smaller.
stage "Xen hypervisor banner" '\(XEN\) Xen version' "${LAB_XEN_TIMEOUT:-60}"
stage "dom0 /init started" 'LAB-DOM0: init started' "${LAB_DOM0_TIMEOUT:-240}"
stage "dom0 toolstack ready" 'LAB-DOM0: ready|LAB-FAIL' "${LAB_READY_TIMEOUT:-180}"
# dom0 bounds the scenario itself; the extra minute covers its diagnostics and shutdown.
stage "scenario verdict" 'LAB-VERDICT: (PASS|FAIL)' $((scen_timeout + 60))

# dom0 powers the machine off after the verdict; give QEMU a bounded moment to exit.
for _ in $(seq 30); do kill -0 "$qemu" 2>/dev/null || break; sleep 1; done
