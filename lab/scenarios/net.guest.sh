# Guest half of `net` (and of `smoke`): xen-netfront against the project's network backend.
# Checks the offloads netfront negotiated (ethtool -k: TCP checksum offload and segmentation
# offload must be on, which needs the backend's feature-gso-tcpv4 and checksum support), pings
# dom0, waits for dom0's ping + TCP handshake, then iperf3 in both directions.
: "${LAB_IPERF_SECS:=5}"

lab_net_up
ethtool -k eth0 > /tmp/ethtool.txt 2>&1 || { cat /tmp/ethtool.txt; lab_fail "ethtool -k eth0 failed"; }
# offload NAME: "on" or "off" (ignoring "[fixed]"), from ethtool -k's indented list.
offload() { awk -v f="$1" '{sub(/^[ \t]+/, "")} $1 == f":" {print $2}' /tmp/ethtool.txt; }
for f in tx-checksum-ipv4 tx-tcp-segmentation generic-segmentation-offload rx-checksumming; do
  v=$(offload "$f")
  lab_result "guest.offload.$f" "${v:-missing}"
  [ "$v" = on ] || { cat /tmp/ethtool.txt; lab_fail "offload $f is '${v:-missing}', expected on"; }
done

lab_wait_for 30 "dom0 to answer ping" ping -c 1 -W 1 "$LAB_DOM0_IP"
out=$(ping -c 5 -W 2 "$LAB_DOM0_IP") || lab_fail "ping to dom0 lost packets"
lab_result guest.ping_to_dom0 ok rtt_avg_ms="$(echo "$out" | awk -F/ '/round-trip/{print $4}')"
# Larger than the MTU: IP fragments through the backend in both directions.
ping -c 3 -W 2 -s 4000 "$LAB_DOM0_IP" >/dev/null || lab_fail "4000-byte ping to dom0 failed"
lab_result guest.ping_4000_bytes ok

timeout 120 nc -l -p 7000 > /tmp/go &
nc_pid=$!
echo "LAB-GUEST: net-up"
wait "$nc_pid" || lab_fail "dom0 never connected to port 7000"
grep -q go /tmp/go || lab_fail "handshake from dom0 garbled"
lab_result guest.tcp_from_dom0 ok

# iperf3: the receiver's bitrate, guest->dom0 (tx) and dom0->guest (rx, -R), and what each run
# cost this guest (CPU, netfront interrupts); dom0 measures its side between the same marks.
# First a 3 s window without traffic: the background both sides pay anyway.
lab_idle_window 3
for dir in tx rx; do lab_iperf3 "$dir"; done
