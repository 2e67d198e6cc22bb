# Scenario: the quick end-to-end check for CI. For now it is kernel-baseline with small sizes
# (the project's own backends do not exist yet); later it will run them instead.
LAB_DISK_MB=16 LAB_DATA_MB=4 LAB_FIO_SECS=3 LAB_IPERF_SECS=2
. /lab/scenarios/kernel-baseline.sh
