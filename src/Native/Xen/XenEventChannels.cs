using Tmds.Linux;

namespace XenBackends.Native.Xen;

/// <summary>
/// <see cref="IEventChannels"/> on real Xen: libxenevtchn over /dev/xen/evtchn. A port returned as
/// pending stays masked until <see cref="Unmask"/>. After <see cref="Unbind"/> a port that was already
/// pending may still be returned once; callers ignore ports they no longer own.
/// </summary>
public sealed unsafe class XenEventChannels : IEventChannels
{
    private readonly EvtchnHandle _handle;
    private readonly int _fd;
    // poll(0) and pending() must be one step: between them another reader could take the port and
    // pending() would then block (the header warns O_NONBLOCK may not work on this device).
    private readonly Lock _pendingLock = new();
    private readonly Lock _pumpLock = new();
    private PendingPortPump? _pump;
    private int _disposed;

    private XenEventChannels(EvtchnHandle handle, int fd)
    {
        _handle = handle;
        _fd = fd;
    }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The evtchn device's own descriptor (xenevtchn_fd): readable while a port is pending.</summary>
    public int PollFd => IsDisposed ? throw new ObjectDisposedException(nameof(XenEventChannels)) : _fd;

    /// <summary>
    /// Opens /dev/xen/evtchn through libxenevtchn. Throws <see cref="XenUnavailableException"/> when
    /// the device or the library is missing, <see cref="XenNativeException"/> when opening fails.
    /// </summary>
    public static XenEventChannels Open() => Open(XenDevicePaths.Evtchn, LibXenEvtchn.Instance);

    /// <param name="devicePath">The node checked before opening; the library opens its own compiled-in path.</param>
    internal static XenEventChannels Open(string devicePath, IXenEvtchn library)
    {
        XenDeviceNode.RequirePresent(devicePath, "xen-evtchn");
        nint xce;
        int errno;
        try
        {
            xce = library.Open(out errno);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw XenLibrary.Evtchn.Unavailable(e);
        }
        if (xce == 0)
            throw XenErrno.OpenFailed("xenevtchn_open", devicePath, errno);

        var handle = new EvtchnHandle(library, xce);
        int fd = library.Fd(xce);
        if (fd < 0)
        {
            handle.Dispose();
            throw XenErrno.CallFailed("xenevtchn_fd", LibC.EBADF, "getting the event channel descriptor");
        }
        return new XenEventChannels(handle, fd);
    }

    public uint BindInterdomain(ushort remoteDomid, uint remotePort)
    {
        using var lease = Lease();
        int port = _handle.Library.BindInterdomain(lease.Pointer, remoteDomid, remotePort, out int errno);
        if (port < 0)
            throw XenErrno.CallFailed("xenevtchn_bind_interdomain", errno,
                $"binding to port {remotePort} of domain {remoteDomid}");
        return (uint)port;
    }

    public void Unbind(uint localPort)
    {
        using var lease = Lease();
        if (_handle.Library.Unbind(lease.Pointer, localPort, out int errno) != 0)
            throw XenErrno.CallFailed("xenevtchn_unbind", errno, $"unbinding local port {localPort}");
    }

    public void Notify(uint localPort)
    {
        using var lease = Lease();
        if (_handle.Library.Notify(lease.Pointer, localPort, out int errno) != 0)
            throw XenErrno.CallFailed("xenevtchn_notify", errno, $"notifying through local port {localPort}");
    }

    public void Unmask(uint localPort)
    {
        using var lease = Lease();
        if (_handle.Library.Unmask(lease.Pointer, localPort, out int errno) != 0)
            throw XenErrno.CallFailed("xenevtchn_unmask", errno, $"unmasking local port {localPort}");
    }

    public bool TryGetPending(out uint localPort)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        PendingPortPump? pump = Volatile.Read(ref _pump);
        if (pump is not null && pump.TryDequeue(out localPort))
            return true;
        return TryReadPending(out localPort);
    }

    public ValueTask<uint> WaitPendingAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (cancellationToken.IsCancellationRequested)
            return ValueTask.FromCanceled<uint>(cancellationToken);
        if (TryGetPending(out uint port))
            return ValueTask.FromResult(port);
        return EnsurePump().ReadAsync(cancellationToken);
    }

    /// <summary>
    /// Stops the wait thread (pending waits fail with <see cref="ObjectDisposedException"/>), then
    /// closes the handle, which unbinds every port still bound.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        lock (_pumpLock)
            _pump?.Dispose();
        _handle.Dispose();
    }

    private PendingPortPump EnsurePump()
    {
        lock (_pumpLock)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _pump ??= new PendingPortPump(_fd, TryReadPending, "xen-evtchn-wait");
        }
    }

    /// <summary>The one place pending() is called: only after poll() said it will not block.</summary>
    private bool TryReadPending(out uint localPort)
    {
        localPort = 0;
        using var lease = Lease();
        lock (_pendingLock)
        {
            var query = new pollfd { fd = _fd, events = LibC.POLLIN };
            int rc;
            do
            {
                rc = LibC.poll(&query, 1, 0);
            }
            while (rc < 0 && LibC.errno == LibC.EINTR);
            if (rc < 0)
                throw XenErrno.CallFailed("poll", LibC.errno, "checking the event channel device for pending ports");
            if (rc == 0)
                return false;
            if ((query.revents & LibC.POLLNVAL) != 0)
                throw XenErrno.CallFailed("poll", LibC.EBADF, "checking the event channel device (fd closed)");

            // POLLERR without POLLIN still goes to pending(): its errno (EFBIG on overflow) says why.
            int port = _handle.Library.Pending(lease.Pointer, out int errno);
            if (port >= 0)
            {
                localPort = (uint)port;
                return true;
            }
            if (errno == LibC.EAGAIN)
                return false;
            throw XenErrno.CallFailed("xenevtchn_pending", errno, "reading a pending port");
        }
    }

    private HandleLease Lease()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return new HandleLease(_handle, this);
    }
}
