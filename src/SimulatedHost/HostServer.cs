using System.Buffers.Binary;
using System.Net.Sockets;
using XenBackends.Native;
using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// Serves a <see cref="SimulatedXenHost"/> on a unix socket so backend workers in other processes get
/// the guests' memory, grant tables and event fds (see <see cref="HostProtocol"/> for the messages).
/// One thread per connection; requests are small and answered at once.
/// </summary>
public sealed class HostServer : IDisposable
{
    private readonly SimulatedXenHost _host;
    private readonly Socket _listener;
    private readonly Lock _lock = new();
    private readonly List<Socket> _connections = [];
    private bool _disposed;

    public HostServer(SimulatedXenHost host, string socketPath)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        _host = host;
        SocketPath = socketPath;
        _listener = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        try
        {
            _listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            _listener.Listen(16);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }
        new Thread(AcceptLoop) { IsBackground = true, Name = "simulated host accept" }.Start();
    }

    public string SocketPath { get; }

    public void Dispose()
    {
        List<Socket> connections;
        lock (_lock)
        {
            _disposed = true;
            connections = [.. _connections];
        }
        // shutdown wakes a thread blocked in accept/recvmsg; closing alone does not on Linux.
        try { _listener.Shutdown(SocketShutdown.Both); } catch (SocketException) { }
        _listener.Dispose();
        foreach (var c in connections)
        {
            try { c.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        }
        try { File.Delete(SocketPath); } catch (IOException) { }
    }

    private void AcceptLoop()
    {
        while (true)
        {
            Socket connection;
            try
            {
                connection = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            lock (_lock)
            {
                if (_disposed)
                {
                    connection.Dispose();
                    return;
                }
                _connections.Add(connection);
            }
            new Thread(() => Serve(connection)) { IsBackground = true, Name = "simulated host connection" }.Start();
        }
    }

    private void Serve(Socket connection)
    {
        var bound = new HashSet<(ushort Domid, uint Port)>();
        var buffer = new byte[HostProtocol.MaxMessage];
        try
        {
            while (true)
            {
                var fds = new List<SafeFd>();
                int n = ScmRights.Receive(connection, buffer, fds);
                foreach (var fd in fds)
                    fd.Dispose(); // requests never carry fds; don't let a client leak them into us
                if (n == 0)
                    return;
                Handle(connection, buffer.AsSpan(0, n), bound);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or XenNativeException)
        {
            // The worker went away or spoke garbage; its ports are released below.
        }
        finally
        {
            foreach (var (domid, port) in bound)
            {
                try { ((IEventChannelBroker)_host.Switch).Close(domid, port); }
                catch (XenNativeException) { }
            }
            lock (_lock)
                _connections.Remove(connection);
            connection.Dispose();
        }
    }

    private void Handle(Socket connection, ReadOnlySpan<byte> request, HashSet<(ushort, uint)> bound)
    {
        if (request.Length != 9)
        {
            HostProtocol.Send(connection, HostProtocol.Reply(Errno.EINVAL));
            return;
        }
        byte op = request[0];
        ushort domid = BinaryPrimitives.ReadUInt16LittleEndian(request[1..]);
        ushort other = BinaryPrimitives.ReadUInt16LittleEndian(request[3..]);
        uint port = BinaryPrimitives.ReadUInt32LittleEndian(request[5..]);
        IEventChannelBroker broker = _host.Switch;
        try
        {
            switch (op)
            {
                case HostProtocol.OpenDomain:
                    if (!_host.TryGetDomain(domid, out var domain))
                    {
                        HostProtocol.Send(connection, HostProtocol.Reply(Errno.ESRCH));
                        return;
                    }
                    HostProtocol.Send(connection, HostProtocol.Reply(0, (uint)domain.Memory.PageCount, (uint)domain.Grants.EntryCount),
                        domain.Memory.Handle, domain.Grants.Handle);
                    return;
                case HostProtocol.AllocUnbound:
                case HostProtocol.BindInterdomain:
                    var binding = op == HostProtocol.AllocUnbound
                        ? broker.AllocUnbound(domid, other)
                        : broker.BindInterdomain(domid, other, port);
                    using (binding.Inbox)
                    using (binding.Outbox)
                    {
                        bound.Add((domid, binding.Port));
                        HostProtocol.Send(connection, HostProtocol.Reply(0, binding.Port), binding.Inbox.Handle, binding.Outbox.Handle);
                    }
                    return;
                case HostProtocol.Close:
                    if (!bound.Remove((domid, port)))
                    {
                        // A worker may only close ports it bound itself.
                        HostProtocol.Send(connection, HostProtocol.Reply(Errno.EINVAL));
                        return;
                    }
                    broker.Close(domid, port);
                    HostProtocol.Send(connection, HostProtocol.Reply(0));
                    return;
                default:
                    HostProtocol.Send(connection, HostProtocol.Reply(Errno.EINVAL));
                    return;
            }
        }
        catch (XenNativeException e)
        {
            HostProtocol.Send(connection, HostProtocol.Reply(e.Errno));
        }
    }
}
