using System.Globalization;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Net;

/// <summary>The backend-directory keys netback publishes before InitWait (netback-anchors 1.1).</summary>
internal static class NetBackendKeys
{
    public static async Task PublishAsync(XenbusDevice device, int maxQueues, CancellationToken cancellationToken)
    {
        // One transaction, like netback_probe, so a frontend never sees half a feature set.
        await device.Store.RunTransactionAsync(async t =>
        {
            string b = device.BackendPath + "/";
            await t.WriteAsync(b + "feature-sg", "1", cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-gso-tcpv4", "1", cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-gso-tcpv6", "1", cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-ipv6-csum-offload", "1", cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-rx-copy", "1", cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-rx-flip", "0", cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-multicast-control", "1", cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-dynamic-multicast-control", "1", cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-split-event-channels", "1", cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "multi-queue-max-queues", maxQueues.ToString(CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-ctrl-ring", "1", cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }
}
