using XenBackends.Native;
using XenBackends.XenStore;

namespace XenBackends.Service.Hosting;

/// <summary>
/// What a worker needs from "Xen", real or simulated. Each worker process opens its own handles after
/// exec: gntdev and evtchn handles must never cross a fork.
/// </summary>
public interface IXenHost : IDisposable
{
    /// <summary>Short name for logs and status ("xen", "simulated").</summary>
    string Kind { get; }

    IGrantMapper CreateGrantMapper();

    IEventChannels OpenEventChannels();

    Task<XenStoreClient> OpenXenStoreAsync(CancellationToken cancellationToken);
}
