# Guest half of `smoke`: the disk checks, then the network checks, on one guest.
. /lab/scenarios/disk.guest.sh
. /lab/scenarios/net.guest.sh
