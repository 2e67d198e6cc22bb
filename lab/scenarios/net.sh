# Scenario: the project's network backend (tap vif<domid>.0 on xenbr0 through the stock
# vif-bridge script) under the guest's real xen-netfront: offloads (ethtool -k), ping both
# ways, a TCP handshake, iperf3 both directions. Kernel netback stays unloaded. Afterwards
# xl destroy must leave no worker, no tap and no xenstore nodes.
. /lab/ours.sh
: "${LAB_IPERF_SECS:=5}"
iperf3 -s -D -B "$LAB_DOM0_IP" --logfile /run/lab/iperf3.log || lab_fail "iperf3 server did not start"
lab_ours_start
# CPU cost of each iperf3 run, both sides (dom0/lib.sh lab_cpu_sampler, guest lab_iperf3).
lab_cpu_sampler net /run/lab/cpu-samples.txt
lab_ours_guest net net "" "$LAB_OURS_VIF" "lab.iperf_secs=$LAB_IPERF_SECS"
lab_idle_check /run/lab/cpu-samples.txt net
for w in iperf3-tx iperf3-rx; do lab_cpu_report /run/lab/cpu-samples.txt net "$w"; done
