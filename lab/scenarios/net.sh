# Scenario: the project's network backend (tap vif<domid>.0 on xenbr0 through the stock
# vif-bridge script) under the guest's real xen-netfront: offloads (ethtool -k), ping both
# ways, a TCP handshake, iperf3 both directions. Kernel netback stays unloaded. Afterwards
# xl destroy must leave no worker, no tap and no xenstore nodes.
. /lab/ours.sh
: "${LAB_IPERF_SECS:=5}"
iperf3 -s -D -B "$LAB_DOM0_IP" --logfile /run/lab/iperf3.log || lab_fail "iperf3 server did not start"
lab_ours_start
lab_ours_guest net net "" "$LAB_OURS_VIF" "lab.iperf_secs=$LAB_IPERF_SECS"
