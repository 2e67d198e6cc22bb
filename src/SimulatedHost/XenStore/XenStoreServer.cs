using System.Collections.Concurrent;
using System.Net.Sockets;

namespace XenBackends.SimulatedHost.XenStore;

/// <summary>
/// An in-process xenstored speaking the real wire protocol. Identity comes from the socket a client
/// connects to: <see cref="Listen"/> binds one unix socket per domid, so a simulated guest's frontend
/// (connected to its domain's socket) is checked as that guest and a backend on dom0's socket is privileged.
/// </summary>
public sealed class XenStoreServer : IAsyncDisposable
{
    private readonly XsDatabase _database;
    private readonly ConcurrentDictionary<XenStoreListener, byte> _listeners = new();
    private readonly ConcurrentDictionary<XsServerConnection, Task> _connections = new();
    private bool _disposed;

    public XenStoreServer(XenStoreServerOptions? options = null) => _database = new XsDatabase(options ?? new XenStoreServerOptions());

    /// <summary>
    /// Accepts connections on <paramref name="socketPath"/>; each one acts as <paramref name="domId"/> (0 = privileged).
    /// A stale socket file at that path is replaced.
    /// </summary>
    public XenStoreListener Listen(string socketPath, uint domId)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        if (domId >= 0x7FF0) throw new ArgumentOutOfRangeException(nameof(domId), domId, "not a valid domid (DOMID_FIRST_RESERVED is 0x7FF0)");
        if (Path.Exists(socketPath)) File.Delete(socketPath);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(socketPath));
            socket.Listen(64);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var listener = new XenStoreListener(this, socket, socketPath, domId);
        _listeners[listener] = 0;
        return listener;
    }

    /// <summary>What the toolstack does when a domain is created: marks it introduced and fires @introduceDomain.</summary>
    public void IntroduceDomain(uint domId) => _database.SetIntroduced(domId, true);

    /// <summary>Domain gone (shutdown, crash, destroy): no longer introduced, fires @releaseDomain.</summary>
    public void ReleaseDomain(uint domId) => _database.SetIntroduced(domId, false);

    public bool IsDomainIntroduced(uint domId) => _database.IsIntroduced(domId);

    /// <summary>Requests handled so far on all connections: a client that polls instead of waiting shows here.</summary>
    public long RequestsHandled => _database.RequestsHandled;

    internal void Serve(Socket accepted, uint domId)
    {
        var connection = new XsServerConnection(new NetworkStream(accepted, ownsSocket: true), domId, _database);
        _connections[connection] = Task.Run(async () =>
        {
            await connection.RunAsync().ConfigureAwait(false);
            _connections.TryRemove(connection, out _);
        });
    }

    internal void Forget(XenStoreListener listener) => _listeners.TryRemove(listener, out _);

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var listener in _listeners.Keys) await listener.DisposeAsync().ConfigureAwait(false);
        foreach (var connection in _connections.Keys) connection.Close();
        await Task.WhenAll(_connections.Values).ConfigureAwait(false);
    }
}
