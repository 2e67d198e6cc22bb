namespace XenBackends.Native;

/// <summary>
/// Interdomain event channels as one open handle sees them (<c>xenevtchn_handle</c>): ports are
/// bound here, a kick from the remote end shows up as a pending local port that stays masked until
/// <see cref="Unmask"/>. Unmasking only after the ring is drained is what keeps a guest's event
/// storm from becoming a backend busy loop (XSA-332).
/// </summary>
public interface IEventChannels : IDisposable
{
    /// <summary>Binds to the remote domain's unbound port; returns the local port.</summary>
    uint BindInterdomain(ushort remoteDomid, uint remotePort);

    void Unbind(uint localPort);

    /// <summary>Kicks the remote end of a bound local port.</summary>
    void Notify(uint localPort);

    /// <summary>Re-enables delivery for a port returned by a pending call.</summary>
    void Unmask(uint localPort);

    /// <summary>Returns a pending port without blocking, if there is one (the port is now masked).</summary>
    bool TryGetPending(out uint localPort);

    /// <summary>Waits for the next pending port (the port is now masked).</summary>
    ValueTask<uint> WaitPendingAsync(CancellationToken cancellationToken);

    /// <summary>
    /// A descriptor that polls readable whenever a port may be pending, so a ring worker can sleep in
    /// one epoll on its event channel and its I/O completions together; after it fires, call
    /// <see cref="TryGetPending"/> until it returns false. Do not read it directly.
    /// </summary>
    int PollFd { get; }
}
