# Scenario (guest side) for xenstore-probe: let both frontends connect, say so, and stay up
# while dom0 reads xenstore (dom0 destroys this guest when done).
lab_wait_for 30 "/dev/xvda (xen-blkfront)" test -b /dev/xvda
lab_net_up
echo "LAB-GUEST: devices-up"
sleep 600
