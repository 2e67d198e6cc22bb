# Scenario: the project's block backend (xen-backends serve -> worker, block-xen-backends hotplug
# script, raw image file) under the guest's real xen-blkfront: integrity with O_DIRECT, then
# fio --verify (2 jobs, 4 KiB random QD8 and 1 MiB sequential QD4). Kernel blkback stays
# unloaded. Afterwards xl destroy must leave no worker and no xenstore nodes.
. /lab/ours.sh
: "${LAB_DISK_MB:=64}" "${LAB_DATA_MB:=16}" "${LAB_VERIFY_MB:=32}"
lab_ours_start
lab_ours_guest disk disk "$(lab_ours_disk "$(lab_ours_image "$LAB_DISK_MB")")" "" \
  "lab.data_mb=$LAB_DATA_MB lab.verify_mb=$LAB_VERIFY_MB"
