using XenBackends.Native;
using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// The simulated hypervisor's event-channel table for every domain. Each port has an "inbox" eventfd
/// that is signalled when its peer sends; binding two ports makes each one's outbox the other's inbox.
/// The rules are Xen's (event_channel.c): alloc_unbound needs an existing domain; bind_interdomain gives
/// ESRCH for an unknown remote domain and EINVAL unless the remote port is unbound and reserved for the
/// binding domain; closing one end of an interdomain channel returns the other end to unbound.
/// </summary>
public sealed class EventChannelSwitch : IEventChannelBroker, IDisposable
{
    /// <summary>2-level event channels give a 64-bit guest 4096 ports.</summary>
    public const uint MaxPorts = 4096;

    private readonly Lock _lock = new();
    private readonly HashSet<ushort> _domains = [];
    private readonly Dictionary<(ushort Domid, uint Port), Channel> _ports = [];

    /// <summary>Makes <paramref name="domid"/> exist as far as event channels are concerned.</summary>
    public void AddDomain(ushort domid)
    {
        lock (_lock)
            if (!_domains.Add(domid))
                throw new ArgumentException($"domain {domid} already exists", nameof(domid));
    }

    /// <summary>Drops a domain and closes all its ports (peers go back to unbound).</summary>
    public void RemoveDomain(ushort domid)
    {
        lock (_lock)
        {
            foreach (var key in _ports.Keys.Where(k => k.Domid == domid).ToList())
                CloseLocked(key.Domid, key.Port);
            _domains.Remove(domid);
        }
    }

    /// <summary>Whether a port is bound interdomain, for diagnostics and tests.</summary>
    public bool IsInterdomain(ushort domid, uint port)
    {
        lock (_lock)
            return _ports.TryGetValue((domid, port), out var c) && c.Peer is not null;
    }

    PortBinding IEventChannelBroker.AllocUnbound(ushort domid, ushort remoteDomid)
    {
        lock (_lock)
        {
            if (!_domains.Contains(domid))
                throw new XenNativeException("EVTCHNOP_alloc_unbound", Errno.ESRCH, $"domain {domid} does not exist");
            var channel = new Channel(domid, FreePort(domid), remoteDomid);
            _ports.Add((domid, channel.Port), channel);
            return Handout(channel);
        }
    }

    PortBinding IEventChannelBroker.BindInterdomain(ushort domid, ushort remoteDomid, uint remotePort)
    {
        const string op = "EVTCHNOP_bind_interdomain";
        lock (_lock)
        {
            if (!_domains.Contains(domid))
                throw new XenNativeException(op, Errno.ESRCH, $"domain {domid} does not exist");
            if (!_domains.Contains(remoteDomid))
                throw new XenNativeException(op, Errno.ESRCH, $"remote domain {remoteDomid} does not exist");
            if (!_ports.TryGetValue((remoteDomid, remotePort), out var remote))
                throw new XenNativeException(op, Errno.EINVAL, $"d{remoteDomid} port {remotePort} is not allocated");
            if (remote.Peer is not null)
                throw new XenNativeException(op, Errno.EINVAL, $"d{remoteDomid} port {remotePort} is already bound");
            if (remote.RemoteDomid != domid)
                throw new XenNativeException(op, Errno.EINVAL, $"d{remoteDomid} port {remotePort} is reserved for d{remote.RemoteDomid}, not d{domid}");
            var local = new Channel(domid, FreePort(domid), remoteDomid);
            // A kick the guest sent before anyone was bound went nowhere in Xen; drop it here too.
            remote.Outbox.TryConsume(out _);
            local.LinkTo(remote);
            _ports.Add((domid, local.Port), local);
            return Handout(local);
        }
    }

    void IEventChannelBroker.Close(ushort domid, uint port)
    {
        lock (_lock)
            CloseLocked(domid, port);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var c in _ports.Values)
                c.Dispose();
            _ports.Clear();
        }
    }

    private void CloseLocked(ushort domid, uint port)
    {
        if (!_ports.Remove((domid, port), out var channel))
            throw new XenNativeException("EVTCHNOP_close", Errno.EINVAL, $"d{domid} port {port} is not allocated");
        if (channel.Peer is { } peer)
        {
            // The surviving end becomes unbound again, reserved for the domain that closed. Its outbox
            // stays (the surviving handle holds it); a later binder drains it before use.
            peer.Peer = null;
            peer.RemoteDomid = domid;
        }
        channel.Dispose();
    }

    private uint FreePort(ushort domid)
    {
        // Port 0 is never handed out by Xen.
        for (uint port = 1; port < MaxPorts; port++)
            if (!_ports.ContainsKey((domid, port)))
                return port;
        throw new XenNativeException("evtchn_get_port", Errno.ENOSPC, $"domain {domid} has no free event channel port");
    }

    private static PortBinding Handout(Channel c) =>
        new(c.Port, EventFd.Adopt(c.Inbox.Handle.Duplicate()), EventFd.Adopt(c.Outbox.Handle.Duplicate()));

    private sealed class Channel(ushort domid, uint port, ushort remoteDomid) : IDisposable
    {
        public ushort Domid { get; } = domid;
        public uint Port { get; } = port;
        public ushort RemoteDomid { get; set; } = remoteDomid;
        public Channel? Peer { get; set; }
        public EventFd Inbox { get; private set; } = EventFd.Create();
        public EventFd Outbox { get; private set; } = EventFd.Create();

        /// <summary>Cross-wires this new port with an unbound one: each end's outbox is the other's inbox.</summary>
        public void LinkTo(Channel remote)
        {
            Inbox.Dispose();
            Inbox = EventFd.Adopt(remote.Outbox.Handle.Duplicate());
            Outbox.Dispose();
            Outbox = EventFd.Adopt(remote.Inbox.Handle.Duplicate());
            Peer = remote;
            remote.Peer = this;
        }

        public void Dispose()
        {
            Inbox.Dispose();
            Outbox.Dispose();
        }
    }
}
