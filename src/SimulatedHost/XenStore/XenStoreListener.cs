using System.Net.Sockets;

namespace XenBackends.SimulatedHost.XenStore;

/// <summary>One listening unix socket whose connections all act as <see cref="DomId"/>.</summary>
public sealed class XenStoreListener : IAsyncDisposable
{
    private readonly XenStoreServer _server;
    private readonly Socket _socket;
    private readonly Task _acceptLoop;

    internal XenStoreListener(XenStoreServer server, Socket socket, string socketPath, uint domId)
    {
        _server = server;
        _socket = socket;
        SocketPath = socketPath;
        DomId = domId;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public string SocketPath { get; }
    public uint DomId { get; }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket accepted;
            try
            {
                accepted = await _socket.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return; // listener closed
            }
            _server.Serve(accepted, DomId);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _server.Forget(this);
        _socket.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        try { File.Delete(SocketPath); } catch (IOException) { }
    }
}
