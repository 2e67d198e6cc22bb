using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;

namespace XenBackends.XenStore.Tests;

/// <summary>
/// A scripted daemon that misbehaves. Whatever it sends, pending and later requests must fail with a
/// clear <see cref="XenStoreConnectionException"/> within a bound, never hang.
/// </summary>
public sealed class FakeDaemonTests : IAsyncLifetime
{
    private readonly DuplexPipeStream _stream = new();
    private XenStoreClient _client = null!;

    public Task InitializeAsync()
    {
        _client = XenStoreClient.Create(new XenStoreTransport(_stream, "fake daemon"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _client.DisposeAsync();

    private async Task<(XsdSockmsgType Type, uint ReqId, uint TxId, byte[] Payload)> ReceiveRequestAsync()
    {
        using var cts = new CancellationTokenSource(WatchAssertions.Bound);
        var input = _stream.DaemonInput;
        while (true)
        {
            var result = await input.ReadAsync(cts.Token);
            var buffer = result.Buffer;
            if (buffer.Length >= XsdSockmsg.HeaderSize)
            {
                var (type, reqId, txId, len) = XsdSockmsg.ReadRaw(buffer.Slice(0, XsdSockmsg.HeaderSize).ToArray());
                if (buffer.Length >= XsdSockmsg.HeaderSize + len)
                {
                    var payload = buffer.Slice(XsdSockmsg.HeaderSize, len).ToArray();
                    input.AdvanceTo(buffer.GetPosition(XsdSockmsg.HeaderSize + len));
                    return ((XsdSockmsgType)type, reqId, txId, payload);
                }
            }
            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private async Task SendAsync(byte[] bytes) => await _stream.DaemonOutput.WriteAsync(bytes);

    private static byte[] Header(uint type, uint reqId, uint len)
    {
        var header = new byte[16];
        new XsdSockmsg((XsdSockmsgType)type, reqId, 0, len).WriteTo(header);
        return header;
    }

    private static async Task<XenStoreConnectionException> FailsClearly(Task request) =>
        await Assert.ThrowsAsync<XenStoreConnectionException>(() => request.WaitAsync(WatchAssertions.Bound));

    [Fact]
    public async Task RequestIsFramedAsXsdSockmsg()
    {
        var write = _client.WriteAsync("/a/b", "xyz");
        var request = await ReceiveRequestAsync();
        Assert.Equal((XsdSockmsgType.XS_WRITE, 0u), (request.Type, request.TxId));
        Assert.Equal("/a/b\0xyz", Encoding.UTF8.GetString(request.Payload));
        await SendAsync(XsdSockmsg.Frame(XsdSockmsgType.XS_WRITE, request.ReqId, 0, "OK\0"u8));
        await write.WaitAsync(WatchAssertions.Bound);
    }

    [Fact]
    public async Task RepliesInAnyOrderAndInterleavedEventsReachTheRightPlaces()
    {
        var first = _client.ReadStringAsync("/first");
        var firstRequest = await ReceiveRequestAsync();
        var second = _client.ReadStringAsync("/second");
        var secondRequest = await ReceiveRequestAsync();

        await SendAsync(XsdSockmsg.Frame(XsdSockmsgType.XS_READ, secondRequest.ReqId, 0, "2"u8));
        await SendAsync(XsdSockmsg.Frame(XsdSockmsgType.XS_WATCH_EVENT, 0, 0, XsPayload.Strings("/w", "tok")));
        await SendAsync(XsdSockmsg.Frame(XsdSockmsgType.XS_ERROR, firstRequest.ReqId, 0, "ENOENT\0"u8));

        Assert.Equal("2", await second.WaitAsync(WatchAssertions.Bound));
        var error = await Assert.ThrowsAsync<XenStoreErrorException>(() => first.WaitAsync(WatchAssertions.Bound));
        Assert.Equal(("ENOENT", "/first"), (error.ErrnoName, error.Path));
        Assert.Equal(new XenStoreWatchEvent("/w", "tok"), await _client.NextEventAsync());
    }

    [Fact]
    public async Task OversizedReplyKillsTheConnectionForEveryone()
    {
        var pending = _client.ReadAsync("/x");
        var other = _client.ReadAsync("/y");
        var request = await ReceiveRequestAsync();
        await SendAsync(Header((uint)XsdSockmsgType.XS_READ, request.ReqId, 5000));

        Assert.Contains("XENSTORE_PAYLOAD_MAX", (await FailsClearly(pending)).Message);
        await FailsClearly(other);
        await FailsClearly(_client.ReadAsync("/later"));
        var closed = await Assert.ThrowsAsync<System.Threading.Channels.ChannelClosedException>(() => _client.WatchEvents.ReadAsync().AsTask().WaitAsync(WatchAssertions.Bound));
        Assert.IsType<XenStoreConnectionException>(closed.InnerException);
    }

    [Fact]
    public async Task ReplyToAnUnknownReqIdIsAProtocolError()
    {
        var pending = _client.ReadAsync("/x");
        var request = await ReceiveRequestAsync();
        await SendAsync(XsdSockmsg.Frame(XsdSockmsgType.XS_READ, request.ReqId + 1000, 0, "v"u8));
        Assert.Contains("no request is waiting", (await FailsClearly(pending)).Message);
    }

    [Fact]
    public async Task UnknownMessageTypeIsAProtocolError()
    {
        var pending = _client.ReadAsync("/x");
        var request = await ReceiveRequestAsync();
        await SendAsync(Header(99, request.ReqId, 0));
        Assert.Contains("unknown message type 99", (await FailsClearly(pending)).Message);
    }

    [Fact]
    public async Task ReplyOfTheWrongTypeIsAProtocolError()
    {
        var pending = _client.ReadAsync("/x");
        var request = await ReceiveRequestAsync();
        await SendAsync(XsdSockmsg.Frame(XsdSockmsgType.XS_WRITE, request.ReqId, 0, "OK\0"u8));
        Assert.Contains("XS_WRITE", (await FailsClearly(pending)).Message);
    }

    [Fact]
    public async Task TruncatedHeaderThenCloseFailsPendingRequests()
    {
        var pending = _client.ReadAsync("/x");
        await ReceiveRequestAsync();
        await SendAsync(new byte[7]);
        await _stream.DaemonOutput.CompleteAsync();
        Assert.Contains("middle of a message", (await FailsClearly(pending)).Message);
    }

    [Fact]
    public async Task SilentDaemonHitsThePerRequestTimeoutAndStaysUsable()
    {
        await using var stream = new DuplexPipeStream();
        // The timeout applies to every request, including the follow-up that must succeed, so it has to
        // leave room for this test's own reply on a loaded machine (100 ms did not, under CI load).
        await using var client = XenStoreClient.Create(new XenStoreTransport(stream, "slow"), new XenStoreClientOptions { RequestTimeout = TimeSpan.FromSeconds(2) });
        var e = await Assert.ThrowsAsync<XenStoreTimeoutException>(() => client.ReadAsync("/x").WaitAsync(WatchAssertions.Bound));
        Assert.Contains("no reply within", e.Message);

        // The late reply to the abandoned request is tolerated, and the connection still works.
        var late = await ReadFrameAsync(stream.DaemonInput);
        await stream.DaemonOutput.WriteAsync(XsdSockmsg.Frame(XsdSockmsgType.XS_READ, late.ReqId, 0, "late"u8));
        var next = client.GetDomainPathAsync(3);
        var request = await ReadFrameAsync(stream.DaemonInput);
        await stream.DaemonOutput.WriteAsync(XsdSockmsg.Frame(XsdSockmsgType.XS_GET_DOMAIN_PATH, request.ReqId, 0, "/local/domain/3\0"u8));
        Assert.Equal("/local/domain/3", await next.WaitAsync(WatchAssertions.Bound));
    }

    [Fact]
    public async Task DaemonClosingTheSocketFailsPendingAndLaterRequests()
    {
        var directory = Directory.CreateTempSubdirectory("xs-fake-").FullName;
        var path = Path.Combine(directory, "sock");
        try
        {
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(1);
            await using var client = await XenStoreClient.OpenSocketAsync(path);
            using var daemon = await listener.AcceptAsync().WaitAsync(WatchAssertions.Bound);
            var pending = client.ReadAsync("/x");
            using var cts = new CancellationTokenSource(WatchAssertions.Bound);
            await daemon.ReceiveAsync(new byte[64], cts.Token);
            daemon.Close();
            Assert.Contains("closed the connection", (await FailsClearly(pending)).Message);
            Assert.Contains("closed the connection", (await FailsClearly(client.ReadAsync("/y"))).Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task MissingSocketIsAClearConnectionError()
    {
        var e = await Assert.ThrowsAsync<XenStoreConnectionException>(() => XenStoreClient.OpenSocketAsync("/nonexistent/xenstored/socket"));
        Assert.Contains("/nonexistent/xenstored/socket", e.Message);
    }

    private static async Task<(uint ReqId, uint Len)> ReadFrameAsync(PipeReader input)
    {
        using var cts = new CancellationTokenSource(WatchAssertions.Bound);
        while (true)
        {
            var result = await input.ReadAsync(cts.Token);
            var buffer = result.Buffer;
            if (buffer.Length >= 16)
            {
                var (_, reqId, _, len) = XsdSockmsg.ReadRaw(buffer.Slice(0, 16).ToArray());
                if (buffer.Length >= 16 + len)
                {
                    input.AdvanceTo(buffer.GetPosition(16 + len));
                    return (reqId, len);
                }
            }
            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }
}
