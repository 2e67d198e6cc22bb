using System.Buffers.Binary;
using System.Net.Sockets;
using XenBackends.Native;
using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// A worker process's connection to a <see cref="HostServer"/>: gives an <see cref="IGrantMapper"/> and
/// <see cref="IEventChannels"/> that behave exactly as the in-process ones, on fds received from the host.
/// Grant validation runs in the worker against the shared grant table, so it needs no round trip.
/// </summary>
public sealed class HostClient : IForeignDomains, IEventChannelBroker, IDisposable
{
    private readonly Socket _socket;
    private readonly Lock _lock = new();
    private readonly Dictionary<ushort, ForeignDomain?> _domains = [];
    private bool _disposed;

    private HostClient(Socket socket) => _socket = socket;

    public static HostClient Connect(string socketPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            return new HostClient(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A grant mapper acting as <paramref name="backendDomid"/>; domains are opened on first use.</summary>
    public IGrantMapper CreateGrantMapper(ushort backendDomid = SimulatedXenHost.Dom0) => new SimulatedGrantMapper(backendDomid, this);

    public SimulatedEventChannels OpenEventChannels(ushort domid = SimulatedXenHost.Dom0) => new(domid, this);

    ForeignDomain? IForeignDomains.Find(ushort domid)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_domains.TryGetValue(domid, out var known))
                return known;
            var (reply, fds) = Call(HostProtocol.Request(HostProtocol.OpenDomain, domid), expectedFds: 2, "open domain");
            ForeignDomain? domain = null;
            if (reply.Errno == 0)
            {
                MemFd? memory = null;
                try
                {
                    memory = MemFd.Adopt(fds[0]);
                    if (memory.PageCount != reply.A)
                        throw new IOException($"host said d{domid} has {reply.A} pages, its memfd has {memory.PageCount}");
                    domain = new ForeignDomain(domid, memory, GrantTable.Adopt(fds[1], checked((int)reply.B)), owned: true);
                }
                catch
                {
                    memory?.Dispose();
                    foreach (var fd in fds)
                        fd.Dispose();
                    throw;
                }
            }
            else if (reply.Errno != Errno.ESRCH)
            {
                throw new XenNativeException("open domain", reply.Errno, $"the simulated host refused d{domid}");
            }
            // Domain ids are not reused within one simulated host's life, so "absent" may be cached too.
            _domains[domid] = domain;
            return domain;
        }
    }

    PortBinding IEventChannelBroker.AllocUnbound(ushort domid, ushort remoteDomid) =>
        Bind(HostProtocol.Request(HostProtocol.AllocUnbound, domid, remoteDomid), "EVTCHNOP_alloc_unbound");

    PortBinding IEventChannelBroker.BindInterdomain(ushort domid, ushort remoteDomid, uint remotePort) =>
        Bind(HostProtocol.Request(HostProtocol.BindInterdomain, domid, remoteDomid, remotePort), "EVTCHNOP_bind_interdomain");

    void IEventChannelBroker.Close(ushort domid, uint port)
    {
        lock (_lock)
        {
            var (reply, _) = Call(HostProtocol.Request(HostProtocol.Close, domid, 0, port), expectedFds: 0, "EVTCHNOP_close");
            if (reply.Errno != 0)
                throw new XenNativeException("EVTCHNOP_close", reply.Errno, $"d{domid} port {port}");
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            foreach (var d in _domains.Values)
                d?.Dispose();
            _domains.Clear();
        }
        _socket.Dispose();
    }

    private PortBinding Bind(byte[] request, string operation)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var (reply, fds) = Call(request, expectedFds: 2, operation);
            if (reply.Errno != 0)
                throw new XenNativeException(operation, reply.Errno, "refused by the simulated host");
            EventFd? inbox = null;
            try
            {
                inbox = EventFd.Adopt(fds[0]);
                return new PortBinding(reply.A, inbox, EventFd.Adopt(fds[1]));
            }
            catch
            {
                inbox?.Dispose();
                fds[1].Dispose();
                throw;
            }
        }
    }

    private ((int Errno, uint A, uint B), List<SafeFd>) Call(byte[] request, int expectedFds, string operation)
    {
        HostProtocol.Send(_socket, request);
        var buffer = new byte[HostProtocol.MaxMessage];
        var fds = new List<SafeFd>();
        int n = ScmRights.Receive(_socket, buffer, fds);
        if (n == 0)
            throw new IOException($"{operation}: the simulated host closed the connection");
        int errno = n >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(buffer) : -1;
        bool wellFormed = n == 12 && (errno != 0 ? fds.Count == 0 : fds.Count == expectedFds);
        if (!wellFormed)
        {
            foreach (var fd in fds)
                fd.Dispose();
            throw new IOException($"{operation}: malformed reply from the simulated host ({n} bytes, {fds.Count} fds)");
        }
        return ((errno, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(4)), BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(8))), fds);
    }
}
