# Scenario: the CI check. One guest with a disk AND a NIC on the project's backends (what `disk`
# and `net` prove, with small sizes: 4 MiB integrity, 8 MiB fio --verify per pattern, 2 s
# iperf3 each way), then the destroy clean-up check. Kernel backends stay unloaded.
. /lab/ours.sh
LAB_DISK_MB=16 LAB_DATA_MB=4 LAB_VERIFY_MB=8 LAB_IPERF_SECS=2
iperf3 -s -D -B "$LAB_DOM0_IP" --logfile /run/lab/iperf3.log || lab_fail "iperf3 server did not start"
lab_ours_start
# The guest half (net.guest.sh) marks an idle window: the CI check also catches a busy loop.
lab_cpu_sampler smoke /run/lab/cpu-samples.txt
lab_ours_guest smoke smoke "$(lab_ours_disk "$(lab_ours_image "$LAB_DISK_MB")")" "$LAB_OURS_VIF" \
  "lab.data_mb=$LAB_DATA_MB lab.verify_mb=$LAB_VERIFY_MB lab.iperf_secs=$LAB_IPERF_SECS"
lab_idle_check /run/lab/cpu-samples.txt smoke
