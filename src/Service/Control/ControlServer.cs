using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace XenBackends.Service.Control;

/// <summary>
/// The local control socket: a client sends "status\n" and reads one JSON <see cref="StatusSnapshot"/>
/// until EOF. Mode 0600 under the root-owned runtime directory: only root reads guest details.
/// </summary>
public sealed class ControlServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Func<StatusSnapshot> _snapshot;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private readonly string _path;

    public ControlServer(string path, Func<StatusSnapshot> snapshot, ILogger logger)
    {
        _path = path;
        _snapshot = snapshot;
        _logger = logger;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (File.Exists(path)) File.Delete(path);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _listener.Listen(8);
        _accept = AcceptLoopAsync();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var _ = client;
        await using var stream = new NetworkStream(client, ownsSocket: false);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            var buffer = new byte[64];
            int read = await stream.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
            string request = Encoding.ASCII.GetString(buffer, 0, read).Trim();
            byte[] reply = request == "status"
                ? JsonSerializer.SerializeToUtf8Bytes(_snapshot(), StatusJsonContext.Default.StatusSnapshot)
                : Encoding.UTF8.GetBytes($"{{\"error\":\"unknown request; send status\"}}");
            await stream.WriteAsync(reply, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            _logger.LogDebug("control client went away: {Message}", e.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _accept.ConfigureAwait(false);
        try { File.Delete(_path); } catch (IOException) { }
        _stop.Dispose();
    }
}
