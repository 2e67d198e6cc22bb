using XenBackends.Xenbus;

namespace XenBackends.Backend.Net;

/// <summary>One queue's ring grants and event channels as the frontend wrote them.</summary>
public readonly record struct NetQueueKeys(uint TxRingRef, uint RxRingRef, uint TxEventChannel, uint RxEventChannel)
{
    public bool SplitEventChannels => TxEventChannel != RxEventChannel;
}

/// <summary>The control ring's grant and event channel (ctrl-ring-ref, event-channel-ctrl).</summary>
public readonly record struct CtrlRingKeys(uint RingRef, uint EventChannel);

/// <summary>
/// The frontend's keys, read and validated at connect (netback's connect/read_xenbus_vif_flags):
/// anything impossible is a <see cref="FrontendConfigurationException"/>, which the lifecycle reports fatal.
/// </summary>
public sealed record NetFrontendConfig(IReadOnlyList<NetQueueKeys> Queues, NetFrontendFeatures Features, CtrlRingKeys? Ctrl = null)
{
    private const uint MaxGrantRef = uint.MaxValue;
    private const uint MaxPort = (1u << 17) - 1; // EVTCHN_FIFO_NR_CHANNELS

    public static async Task<NetFrontendConfig> ReadAsync(XenbusDevice device, int maxQueues, CancellationToken cancellationToken)
    {
        // Absent means one queue with the keys at the top level (a frontend that ignores multi-queue).
        uint queues = await FrontendKeys.ReadUInt32Async(device, "multi-queue-num-queues", 1, (uint)maxQueues, 1, cancellationToken).ConfigureAwait(false);
        // Copy-only backend: a frontend that wants page flipping cannot be served (Linux refuses too).
        uint rxCopy = await FrontendKeys.ReadUInt32Async(device, "request-rx-copy", 0, 1, 0, cancellationToken).ConfigureAwait(false);
        if (rxCopy != 1)
            throw new FrontendConfigurationException(device.FrontendPath + "/request-rx-copy", rxCopy.ToString(System.Globalization.CultureInfo.InvariantCulture), "must be 1 (this backend only copies)");

        var list = new List<NetQueueKeys>((int)queues);
        for (int i = 0; i < queues; i++)
        {
            string prefix = queues == 1 ? "" : $"queue-{i}/";
            list.Add(await ReadQueueAsync(device, prefix, cancellationToken).ConfigureAwait(false));
        }

        var features = new NetFrontendFeatures
        {
            Sg = await FrontendKeys.ReadFlagAsync(device, "feature-sg", false, cancellationToken).ConfigureAwait(false),
            GsoTcpV4 = await FrontendKeys.ReadFlagAsync(device, "feature-gso-tcpv4", false, cancellationToken).ConfigureAwait(false),
            GsoTcpV6 = await FrontendKeys.ReadFlagAsync(device, "feature-gso-tcpv6", false, cancellationToken).ConfigureAwait(false),
            Ipv4CsumOffload = !await FrontendKeys.ReadFlagAsync(device, "feature-no-csum-offload", false, cancellationToken).ConfigureAwait(false),
            Ipv6CsumOffload = await FrontendKeys.ReadFlagAsync(device, "feature-ipv6-csum-offload", false, cancellationToken).ConfigureAwait(false),
            RxNotify = await FrontendKeys.ReadFlagAsync(device, "feature-rx-notify", false, cancellationToken).ConfigureAwait(false),
            MulticastControl = await FrontendKeys.ReadFlagAsync(device, "request-multicast-control", false, cancellationToken).ConfigureAwait(false),
        };
        return new NetFrontendConfig(list, features, await ReadCtrlAsync(device, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// connect_ctrl_ring: no ctrl-ring-ref means the frontend has no control ring (Linux netfront);
    /// a ref without its event channel is a broken frontend.
    /// </summary>
    private static async Task<CtrlRingKeys?> ReadCtrlAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        if (await device.ReadFrontendAsync("ctrl-ring-ref", cancellationToken).ConfigureAwait(false) is null)
            return null;
        uint gref = await FrontendKeys.ReadUInt32Async(device, "ctrl-ring-ref", 0, MaxGrantRef, null, cancellationToken).ConfigureAwait(false);
        uint port = await FrontendKeys.ReadUInt32Async(device, "event-channel-ctrl", 1, MaxPort, null, cancellationToken).ConfigureAwait(false);
        return new CtrlRingKeys(gref, port);
    }

    private static async Task<NetQueueKeys> ReadQueueAsync(XenbusDevice device, string prefix, CancellationToken cancellationToken)
    {
        uint tx = await FrontendKeys.ReadUInt32Async(device, prefix + "tx-ring-ref", 0, MaxGrantRef, null, cancellationToken).ConfigureAwait(false);
        uint rx = await FrontendKeys.ReadUInt32Async(device, prefix + "rx-ring-ref", 0, MaxGrantRef, null, cancellationToken).ConfigureAwait(false);
        string? single = await device.ReadFrontendAsync(prefix + "event-channel", cancellationToken).ConfigureAwait(false);
        if (single is not null)
        {
            uint port = FrontendKeys.ParseUInt32(device.FrontendPath + "/" + prefix + "event-channel", single, 1, MaxPort, null);
            return new NetQueueKeys(tx, rx, port, port);
        }
        // Split channels only exist because we advertised feature-split-event-channels.
        uint txPort = await FrontendKeys.ReadUInt32Async(device, prefix + "event-channel-tx", 1, MaxPort, null, cancellationToken).ConfigureAwait(false);
        uint rxPort = await FrontendKeys.ReadUInt32Async(device, prefix + "event-channel-rx", 1, MaxPort, null, cancellationToken).ConfigureAwait(false);
        if (txPort == rxPort)
            throw new FrontendConfigurationException(device.FrontendPath + "/" + prefix + "event-channel-rx", rxPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "split channels must be two different ports");
        return new NetQueueKeys(tx, rx, txPort, rxPort);
    }
}
