# Helpers for guest scenario scripts (busybox sh). Lines reach dom0 through the guest console.
LAB_DOM0_IP=169.254.0.1
LAB_GUEST_IP=169.254.0.2

lab_result() { echo "LAB-RESULT: $*"; }
lab_fail() { echo "LAB-GUEST-FAIL: $*"; exit 1; }

# lab_wait_for SECONDS DESCRIPTION COMMAND...: as in dom0, but failing the guest script.
lab_wait_for() {
  secs=$1 what=$2; shift 2
  i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -le "$secs" ] || lab_fail "timed out after ${secs}s waiting for $what"
    sleep 1
  done
}

# Seconds since boot with centisecond resolution, for timing steps with busybox only.
lab_now() { cut -d' ' -f1 /proc/uptime; }
lab_rate_mbs() { awk -v mb="$1" -v t0="$2" -v t1="$3" 'BEGIN{d=t1-t0; if(d<=0)d=0.01; printf "%.1f", mb/d}'; }

# Brings up eth0 (xen-netfront) with the guest's link-local address.
lab_net_up() {
  lab_wait_for 30 "eth0 (xen-netfront)" test -d /sys/class/net/eth0
  ip link set lo up
  ip addr add "$LAB_GUEST_IP/16" dev eth0
  ip link set eth0 up
}
