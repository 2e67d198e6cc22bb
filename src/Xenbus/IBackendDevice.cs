namespace XenBackends.Xenbus;

/// <summary>
/// What a backend kind (block, network) plugs into <see cref="BackendLifecycle"/>. Calls arrive one
/// at a time, never concurrently, so implementations need no locking against each other.
/// </summary>
public interface IBackendDevice : IAsyncDisposable
{
    /// <summary>
    /// Opens what the device serves and publishes what the frontend needs before it builds rings
    /// (feature flags, maxima). Runs once, before InitWait. Throwing refuses the device (reported as fatal).
    /// </summary>
    Task PrepareAsync(XenbusDevice device, CancellationToken cancellationToken);

    /// <summary>
    /// Extra condition for connecting (netback waits for the hotplug script's hotplug-status). Backend
    /// directory changes re-evaluate it.
    /// </summary>
    Task<bool> IsReadyToConnectAsync(XenbusDevice device, CancellationToken cancellationToken) => Task.FromResult(true);

    /// <summary>
    /// Reads and validates the frontend's ring keys, maps rings, binds event channels and starts
    /// serving; publishes what must be in place before Connected. Bad guest values throw
    /// <see cref="FrontendConfigurationException"/>. On any throw the implementation has released
    /// whatever it had set up.
    /// </summary>
    Task ConnectAsync(XenbusDevice device, CancellationToken cancellationToken);

    /// <summary>Stops serving and releases rings and grants. Idempotent; completes in-flight I/O first.</summary>
    Task DisconnectAsync(CancellationToken cancellationToken);
}
