using XenBackends.Backend.Net;

namespace XenBackends.Service.Devices;

/// <summary>
/// backend/vif served by the user-space netback, wrapped so a restarted worker re-plumbs the taps it
/// recreates (<see cref="ResumableVif"/>); counters are summed over the device's queues.
/// </summary>
internal static class NetKind
{
    public static DeviceKind Kind { get; } = new("vif", Create, Counters);

    private static ResumableVif Create(DeviceContext ctx)
    {
        ResumableVif? vif = null;
        var net = new NetDevice(new NetDeviceOptions
        {
            Grants = ctx.Grants,
            OpenEventChannels = ctx.Host.OpenEventChannels,
            MaxQueues = ctx.Config.Limits.MaxQueues,
            DefaultRate = DefaultRate(ctx.Qos.VifBytesPerSecond),
            Queue = new NetQueueOptions { RxCoalesceTime = TimeSpan.FromMicroseconds(ctx.Config.Limits.NetRxCoalesceMicroseconds) },
            Log = ctx.Log,
            // A tap deleted under the device comes back down and unbridged: redo vif-bridge's work.
            TapRecreated = (tap, ct) => vif!.ReplumbRecreatedAsync(tap, ct),
        });
        vif = new ResumableVif(net, ctx.Log);
        return vif;
    }

    /// <summary>libxl's default credit window when xl's <c>rate=</c> names no interval (libxl_device_nic: 50 ms).</summary>
    internal const ulong WindowMicroseconds = 50_000;

    /// <summary>
    /// vifBytesPerSecond as the rate key's (bytes, usec) pair: per 50 ms window, as libxl converts xl's
    /// <c>rate=</c>, so the default paces exactly like a toolstack-written key. At least one byte per
    /// window (a window of 0 bytes would never send anything); 0 per second = unlimited.
    /// </summary>
    internal static (ulong Bytes, ulong Microseconds)? DefaultRate(long bytesPerSecond) =>
        bytesPerSecond <= 0 ? null : (Math.Max(1UL, (ulong)bytesPerSecond / (1_000_000 / WindowMicroseconds)), WindowMicroseconds);

    private static IReadOnlyDictionary<string, long> Counters(Xenbus.IBackendDevice device)
    {
        var totals = new Dictionary<string, long>
        {
            ["tx_packets"] = 0, ["tx_bytes"] = 0, ["tx_drops"] = 0, ["tx_errors"] = 0,
            ["rx_packets"] = 0, ["rx_bytes"] = 0, ["rx_drops"] = 0, ["rx_errors"] = 0,
            ["fatal_resets"] = 0, ["rx_stalls"] = 0,
            // Times the queue threads served their rings: packets per pass says how well they batch.
            ["passes"] = 0,
            // The tap deleted under the device, re-created by it, and its bridge lost (NetDevice's tap fault report).
            ["tap_losses"] = ((ResumableVif)device).Inner.TapLosses,
            ["tap_recreations"] = ((ResumableVif)device).Inner.TapRecreations,
            ["bridge_losses"] = ((ResumableVif)device).Inner.BridgeLosses,
        };
        foreach (var q in ((ResumableVif)device).Inner.Counters)
        {
            var s = q.Snapshot();
            totals["tx_packets"] += s.TxPackets; totals["tx_bytes"] += s.TxBytes; totals["tx_drops"] += s.TxDrops; totals["tx_errors"] += s.TxErrors;
            totals["rx_packets"] += s.RxPackets; totals["rx_bytes"] += s.RxBytes; totals["rx_drops"] += s.RxDrops; totals["rx_errors"] += s.RxErrors;
            totals["fatal_resets"] += s.FatalResets; totals["rx_stalls"] += s.RxStalls; totals["passes"] += s.Passes;
        }
        return totals;
    }
}
