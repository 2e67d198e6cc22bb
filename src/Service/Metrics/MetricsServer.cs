using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using XenBackends.Service.Control;

namespace XenBackends.Service.Metrics;

/// <summary>
/// A deliberately tiny HTTP/1.0 responder for GET /metrics on a loopback address: a scrape is one
/// request per connection, and pulling in a web server for it would triple the binary.
/// </summary>
public sealed class MetricsServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<StatusSnapshot> _snapshot;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;

    public MetricsServer(IPEndPoint endPoint, Func<StatusSnapshot> snapshot, ILogger logger)
    {
        _snapshot = snapshot;
        _logger = logger;
        _listener = new TcpListener(endPoint);
        _listener.Start();
        EndPoint = (IPEndPoint)_listener.LocalEndpoint;
        _accept = AcceptLoopAsync();
    }

    public IPEndPoint EndPoint { get; }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            var stream = client.GetStream();
            string requestLine = await ReadRequestLineAsync(stream, timeout.Token).ConfigureAwait(false);
            string[] parts = requestLine.Split(' ');
            (string status, string type, string body) = parts.Length >= 2 && parts[0] == "GET" && (parts[1] == "/metrics" || parts[1] == "/")
                ? ("200 OK", PrometheusText.ContentType, PrometheusText.Render(_snapshot()))
                : ("404 Not Found", "text/plain; charset=utf-8", "only GET /metrics is served here\n");
            byte[] payload = Encoding.UTF8.GetBytes(body);
            string head = $"HTTP/1.0 {status}\r\nContent-Type: {type}\r\nContent-Length: {payload.Length}\r\nConnection: close\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head), timeout.Token).ConfigureAwait(false);
            await stream.WriteAsync(payload, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            _logger.LogDebug("metrics client went away: {Message}", e.Message);
        }
    }

    // The request line is all we need; headers are read up to the blank line only so the client sees a clean close.
    private static async Task<string> ReadRequestLineAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        int used = 0;
        while (used < buffer.Length)
        {
            int read = await stream.ReadAsync(buffer.AsMemory(used), cancellationToken).ConfigureAwait(false);
            if (read == 0) break;
            used += read;
            if (buffer.AsSpan(0, used).IndexOf("\r\n\r\n"u8) >= 0) break;
        }
        string text = Encoding.ASCII.GetString(buffer, 0, used);
        int end = text.IndexOf('\r', StringComparison.Ordinal);
        return end < 0 ? text : text[..end];
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _accept.ConfigureAwait(false);
        _stop.Dispose();
    }
}
