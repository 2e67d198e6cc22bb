using XenBackends.Native;
using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// An event-channel handle (what <c>xenevtchn_open</c> returns) for one domain, on eventfds. A kick from
/// the peer makes the port pending once however many kicks arrive; reporting it masks the port, and
/// kicks while masked are remembered (the eventfd counter keeps them) and reported after
/// <see cref="Unmask"/>. Waiting uses one epoll set of the unmasked ports, so a masked port with kicks
/// queued can never turn the wait into a busy loop.
/// </summary>
public sealed class SimulatedEventChannels : IEventChannels
{
    private readonly IEventChannelBroker _broker;
    private readonly IDisposable? _owner;
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, Port> _ports = [];
    private readonly EpollSet _unmasked = new();
    private bool _disposed;

    internal SimulatedEventChannels(ushort domid, IEventChannelBroker broker, IDisposable? owner = null)
    {
        Domid = domid;
        _broker = broker;
        _owner = owner;
    }

    public ushort Domid { get; }

    /// <summary><c>xenevtchn_bind_unbound_port</c>: a new port that only <paramref name="remoteDomid"/> may bind to.</summary>
    public uint BindUnboundPort(ushort remoteDomid) => Add(_broker.AllocUnbound(Domid, remoteDomid));

    public uint BindInterdomain(ushort remoteDomid, uint remotePort) => Add(_broker.BindInterdomain(Domid, remoteDomid, remotePort));

    public void Unbind(uint localPort)
    {
        Port port;
        lock (_lock)
        {
            port = Find(localPort, "unbind");
            _ports.Remove(localPort);
            if (!port.Masked)
                _unmasked.Remove(port.Binding.Inbox.Handle);
        }
        try
        {
            _broker.Close(Domid, localPort);
        }
        finally
        {
            port.Binding.Inbox.Dispose();
            port.Binding.Outbox.Dispose();
        }
    }

    public void Notify(uint localPort)
    {
        EventFd outbox;
        lock (_lock)
            outbox = Find(localPort, "notify").Binding.Outbox;
        outbox.Signal();
    }

    public void Unmask(uint localPort)
    {
        lock (_lock)
        {
            var port = Find(localPort, "unmask");
            if (!port.Masked)
                return;
            port.Masked = false;
            _unmasked.Add(port.Binding.Inbox.Handle, localPort);
        }
    }

    public bool TryGetPending(out uint localPort)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            while (_unmasked.TryTake(out ulong token))
            {
                var port = _ports[(uint)token];
                if (!port.Binding.Inbox.TryConsume(out _))
                    continue;
                port.Masked = true;
                _unmasked.Remove(port.Binding.Inbox.Handle);
                localPort = port.Binding.Port;
                return true;
            }
        }
        localPort = 0;
        return false;
    }

    /// <summary>The epoll set of unmasked ports: readable exactly when an unmasked port has a kick.</summary>
    public int PollFd
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _unmasked.Fd;
        }
    }

    public async ValueTask<uint> WaitPendingAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (TryGetPending(out uint port))
                return port;
            await _unmasked.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        List<uint> ports;
        lock (_lock)
        {
            if (_disposed)
                return;
            ports = [.. _ports.Keys];
        }
        foreach (uint port in ports)
        {
            try
            {
                Unbind(port);
            }
            catch (XenNativeException)
            {
                // The hypervisor side already dropped it (domain destroyed, host gone): nothing left to release.
            }
            catch (IOException)
            {
            }
        }
        lock (_lock)
        {
            _disposed = true;
            _unmasked.Dispose();
        }
        _owner?.Dispose();
    }

    private uint Add(PortBinding binding)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                binding.Inbox.Dispose();
                binding.Outbox.Dispose();
                throw new ObjectDisposedException(nameof(SimulatedEventChannels));
            }
            _ports.Add(binding.Port, new Port(binding));
            _unmasked.Add(binding.Inbox.Handle, binding.Port);
            return binding.Port;
        }
    }

    private Port Find(uint localPort, string operation)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // The Linux evtchn device answers ENOTCONN for a port this handle did not bind.
        return _ports.TryGetValue(localPort, out var port)
            ? port
            : throw new XenNativeException(operation, Errno.ENOTCONN, $"port {localPort} is not bound by this d{Domid} handle");
    }

    private sealed class Port(PortBinding binding)
    {
        public PortBinding Binding { get; } = binding;
        public bool Masked { get; set; }
    }
}
