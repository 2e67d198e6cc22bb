using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Channels;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.XenStore;

/// <summary>
/// One client connection with a fixed identity (domid). Requests are handled one at a time in arrival
/// order, like the real daemons; replies and watch events share one outbound queue so their order is the
/// order the database produced them. A malformed frame ends only this connection.
/// </summary>
internal sealed class XsServerConnection
{
    private readonly Stream _stream;
    private readonly XsDatabase _database;
    private readonly Channel<byte[]> _outbound = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _closed = new();

    public XsServerConnection(Stream stream, uint domId, XsDatabase database)
    {
        _stream = stream;
        DomId = domId;
        _database = database;
        HomePath = $"/local/domain/{domId}";
    }

    public uint DomId { get; }

    /// <summary>Where relative paths of this connection point: /local/domain/&lt;domid&gt;.</summary>
    public string HomePath { get; }

    /// <summary>Guarded by the database lock.</summary>
    public Dictionary<uint, XsTransaction> Transactions { get; } = [];

    public void QueueReply(XsdSockmsgType type, uint reqId, uint txId, byte[] payload) =>
        _outbound.Writer.TryWrite(XsdSockmsg.Frame(type, reqId, txId, payload));

    public void QueueEvent(string path, string token)
    {
        var payload = XsPayload.Strings(path, token);
        // An event too big for one frame cannot be sent; real daemons drop it as well rather than break framing.
        if (payload.Length <= XsdSockmsg.XENSTORE_PAYLOAD_MAX) QueueReply(XsdSockmsgType.XS_WATCH_EVENT, 0, 0, payload);
    }

    public async Task RunAsync()
    {
        var writer = Task.Run(WriteLoopAsync);
        try
        {
            await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Whatever this peer did (went away, broke framing, or hit a bug in request handling), only this
            // connection ends; the server and every other connection carry on.
        }
        finally
        {
            _database.Forget(this);
            _outbound.Writer.TryComplete();
            await _closed.CancelAsync().ConfigureAwait(false);
            try { await writer.ConfigureAwait(false); } catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException) { }
            await _stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    public void Close() => _closed.Cancel();

    private async Task ReadLoopAsync()
    {
        var reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true));
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(_closed.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                bool malformed;
                while (TryTakeFrame(ref buffer, out var header, out var payload, out malformed))
                {
                    _database.CountRequest();
                    XsRequestHandler.Handle(this, _database, header, payload);
                }
                reader.AdvanceTo(buffer.Start, buffer.End);
                if (malformed || result.IsCompleted) return;
            }
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static bool TryTakeFrame(ref ReadOnlySequence<byte> buffer, out (uint Type, uint ReqId, uint TxId, uint Len) header, out byte[] payload, out bool malformed)
    {
        header = default;
        payload = [];
        malformed = false;
        if (buffer.Length < XsdSockmsg.HeaderSize) return false;
        Span<byte> raw = stackalloc byte[XsdSockmsg.HeaderSize];
        buffer.Slice(0, XsdSockmsg.HeaderSize).CopyTo(raw);
        header = XsdSockmsg.ReadRaw(raw);
        // The real daemons kill a connection whose len exceeds XENSTORE_PAYLOAD_MAX; so do we.
        if (header.Len > XsdSockmsg.XENSTORE_PAYLOAD_MAX)
        {
            malformed = true;
            return false;
        }
        if (buffer.Length < XsdSockmsg.HeaderSize + header.Len) return false;
        payload = buffer.Slice(XsdSockmsg.HeaderSize, header.Len).ToArray();
        buffer = buffer.Slice(XsdSockmsg.HeaderSize + header.Len);
        return true;
    }

    private async Task WriteLoopAsync()
    {
        await foreach (var frame in _outbound.Reader.ReadAllAsync(_closed.Token).ConfigureAwait(false))
        {
            await _stream.WriteAsync(frame, _closed.Token).ConfigureAwait(false);
            await _stream.FlushAsync(_closed.Token).ConfigureAwait(false);
        }
    }
}
