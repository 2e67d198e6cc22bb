using XenBackends.SimulatedHost.XenStore;

namespace XenBackends.XenStore.Tests;

/// <summary>An in-process server with one socket per domid, so tests can connect as any domain.</summary>
public sealed class InProcessHost : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("xs-").FullName;
    private readonly Dictionary<uint, XenStoreListener> _listeners = [];

    public InProcessHost(XenStoreServerOptions? options = null) => Server = new XenStoreServer(options);

    public XenStoreServer Server { get; }

    public string SocketFor(uint domId)
    {
        lock (_listeners)
        {
            if (!_listeners.TryGetValue(domId, out var listener))
                _listeners[domId] = listener = Server.Listen(Path.Combine(_directory, $"dom{domId}"), domId);
            return listener.SocketPath;
        }
    }

    public Task<XenStoreClient> ConnectAsAsync(uint domId, XenStoreClientOptions? options = null) =>
        XenStoreClient.OpenSocketAsync(SocketFor(domId), options);

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
