using XenBackends.Backend.Net;
using XenBackends.Native.Tap;

namespace XenBackends.Fuzz;

/// <summary>
/// Builds one real <see cref="NetQueue"/> (never started) over a guest's tx and rx ring pages, as
/// NetDevice.OpenQueue does: an interdomain event channel, both rings mapped, and everything
/// released again when the queue cannot be built (a refused ring must leave no descriptor behind).
/// </summary>
internal static class FuzzNetQueue
{
    /// <summary>The queue and the guest's end of its event channel (close it after disposing the queue, which owns the rest).</summary>
    public static (NetQueue Queue, uint GuestPort) Open(GuestWorld world, int index, uint txGref, uint rxGref, ITapQueue tap,
        NetFrontendFeatures features, NetQueueOptions options, VifShared vif, Action<string> onFatal)
    {
        var (guestPort, events, port) = world.BindChannel();
        Native.SharedMemory? txMemory = null, rxMemory = null;
        try
        {
            txMemory = world.Grants.Map(GuestWorld.Domid, [txGref], writable: true);
            rxMemory = world.Grants.Map(GuestWorld.Domid, [rxGref], writable: true);
            var queue = new NetQueue(index, GuestWorld.Domid, world.Grants, events, port, port, txMemory, rxMemory, tap,
                features, options, vif, null, (_, reason) => onFatal(reason));
            return (queue, guestPort);
        }
        catch
        {
            events.Dispose();
            txMemory?.Dispose();
            rxMemory?.Dispose();
            world.CloseGuestPort(guestPort);
            throw;
        }
    }
}
