# Scenario: `net` with guest-RX interrupt coalescing off (limits.netRxCoalesceMicroseconds = 0,
# netback's behaviour; the service's default is 20 us): the same offload, ping, TCP and iperf3
# checks under the real xen-netfront, so both RX paths are proven on Xen and iperf3 rx of the two
# can be set side by side.
LAB_OURS_CONFIG='{ "limits": { "netRxCoalesceMicroseconds": 0 } }'
. /lab/scenarios/net.sh
