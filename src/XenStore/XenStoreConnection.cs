using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Threading.Channels;

namespace XenBackends.XenStore;

/// <summary>
/// The wire half of the client: pipelines requests by req_id and runs the single reader loop that sends
/// replies to their waiters and XS_WATCH_EVENTs to the event channel, so events are never dropped while
/// requests are in flight. Any protocol violation by the daemon kills the connection for everyone.
/// </summary>
internal sealed class XenStoreConnection : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly string _description;
    private readonly TimeSpan? _timeout;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<uint, Pending> _pending = new();
    // Requests whose caller gave up (timeout/cancel): their late replies are legal and ignored.
    private readonly ConcurrentDictionary<uint, byte> _abandoned = new();
    private readonly Channel<XenStoreWatchEvent> _events =
        Channel.CreateUnbounded<XenStoreWatchEvent>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = true });
    private readonly Task _readerLoop;
    private Exception? _fault;
    private int _nextReqId;

    private sealed record Pending(XsdSockmsgType Type, TaskCompletionSource<byte[]> Reply);

    public XenStoreConnection(Stream stream, string description, TimeSpan? timeout)
    {
        _stream = stream;
        _description = description;
        _timeout = timeout;
        _readerLoop = Task.Run(ReadLoopAsync);
    }

    public ChannelReader<XenStoreWatchEvent> Events => _events.Reader;

    /// <summary>Sends one request and returns the reply payload; XS_ERROR becomes <see cref="XenStoreErrorException"/>.</summary>
    public async Task<byte[]> RequestAsync(XsdSockmsgType type, uint txId, byte[] payload, string path, CancellationToken cancellationToken)
    {
        ThrowIfFaulted();
        var reqId = unchecked((uint)Interlocked.Increment(ref _nextReqId));
        var frame = XsdSockmsg.Frame(type, reqId, txId, payload);
        var pending = new Pending(type, new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously));
        _pending[reqId] = pending;
        // The reader may have failed everything between the first check and the registration above.
        if (Volatile.Read(ref _fault) is { } fault)
        {
            _pending.TryRemove(reqId, out _);
            throw Dead(fault);
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            await _stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            Fail(new XenStoreConnectionException($"writing to xenstore {_description} failed: {e.Message}", e));
        }
        finally
        {
            _writeLock.Release();
        }

        byte[] reply;
        try
        {
            reply = _timeout is { } timeout
                ? await pending.Reply.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false)
                : await pending.Reply.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (XenStoreErrorReply error)
        {
            throw new XenStoreErrorException(type.ToString(), path, error.ErrnoName);
        }
        catch (TimeoutException)
        {
            Abandon(reqId);
            throw new XenStoreTimeoutException($"xenstore {type} {path}: no reply within {_timeout} (req_id {reqId})");
        }
        catch (OperationCanceledException)
        {
            Abandon(reqId);
            throw;
        }
        return reply;
    }

    private void Abandon(uint reqId)
    {
        // Mark first, then unregister: the reader thread may dispatch this very reply in between, and
        // must then find it in one of the two maps (it treated "neither" as a protocol violation and
        // closed the connection, under every device of the process).
        _abandoned[reqId] = 0;
        if (!_pending.TryRemove(reqId, out _)) _abandoned.TryRemove(reqId, out _);
    }

    private void ThrowIfFaulted()
    {
        if (Volatile.Read(ref _fault) is { } fault) throw Dead(fault);
    }

    private static XenStoreConnectionException Dead(Exception fault) =>
        fault as XenStoreConnectionException ?? new XenStoreConnectionException(fault.Message, fault);

    private async Task ReadLoopAsync()
    {
        var reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true));
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                while (TryTakeFrame(ref buffer, out var header, out var payload)) Dispatch(header, payload);
                reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    Fail(new XenStoreConnectionException(buffer.IsEmpty
                        ? $"xenstore {_description} closed the connection"
                        : $"xenstore {_description} closed the connection in the middle of a message ({buffer.Length} bytes of a frame)"));
                    return;
                }
            }
        }
        catch (XenStoreConnectionException e)
        {
            Fail(e);
        }
        catch (Exception e)
        {
            Fail(new XenStoreConnectionException($"reading from xenstore {_description} failed: {e.Message}", e));
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private bool TryTakeFrame(ref ReadOnlySequence<byte> buffer, out (uint Type, uint ReqId, uint TxId, uint Len) header, out byte[] payload)
    {
        header = default;
        payload = [];
        if (buffer.Length < XsdSockmsg.HeaderSize) return false;
        Span<byte> raw = stackalloc byte[XsdSockmsg.HeaderSize];
        buffer.Slice(0, XsdSockmsg.HeaderSize).CopyTo(raw);
        header = XsdSockmsg.ReadRaw(raw);
        // Judge the header before waiting for its payload: a bogus len must not make us wait for 4 GB.
        if (header.Len > XsdSockmsg.XENSTORE_PAYLOAD_MAX)
            throw Protocol($"a message of len {header.Len} exceeds XENSTORE_PAYLOAD_MAX ({XsdSockmsg.XENSTORE_PAYLOAD_MAX})");
        if (!XsdSockmsgTypes.IsKnown(header.Type))
            throw Protocol($"unknown message type {header.Type} (req_id {header.ReqId})");
        if (buffer.Length < XsdSockmsg.HeaderSize + header.Len) return false;
        payload = buffer.Slice(XsdSockmsg.HeaderSize, header.Len).ToArray();
        buffer = buffer.Slice(XsdSockmsg.HeaderSize + header.Len);
        return true;
    }

    private void Dispatch((uint Type, uint ReqId, uint TxId, uint Len) header, byte[] payload)
    {
        var type = (XsdSockmsgType)header.Type;
        if (type == XsdSockmsgType.XS_WATCH_EVENT)
        {
            var parts = XsPayload.Split(payload);
            if (parts.Count < 2) throw Protocol($"XS_WATCH_EVENT without path and token ({parts.Count} strings)");
            _events.Writer.TryWrite(new XenStoreWatchEvent(parts[0], parts[1]));
            return;
        }
        if (!_pending.TryRemove(header.ReqId, out var pending))
        {
            if (_abandoned.TryRemove(header.ReqId, out _)) return;
            throw Protocol($"reply of type {type} to req_id {header.ReqId}, which no request is waiting for");
        }
        if (type == XsdSockmsgType.XS_ERROR)
        {
            pending.Reply.TrySetException(new XenStoreErrorReply(XsPayload.SingleString(payload)));
            return;
        }
        if (type != pending.Type)
        {
            // Already taken out of _pending, so Fail() would not reach this waiter: fail it here.
            var mismatch = Protocol($"reply of type {type} to a {pending.Type} request (req_id {header.ReqId})");
            pending.Reply.TrySetException(mismatch);
            throw mismatch;
        }
        pending.Reply.TrySetResult(payload);
    }

    private XenStoreConnectionException Protocol(string problem) =>
        new($"xenstore {_description} broke the protocol: {problem}; connection closed");

    private void Fail(Exception fault)
    {
        if (Interlocked.CompareExchange(ref _fault, fault, null) is not null) return;
        _events.Writer.TryComplete(fault);
        foreach (var reqId in _pending.Keys)
            if (_pending.TryRemove(reqId, out var pending)) pending.Reply.TrySetException(Dead(fault));
        // Closing the stream also wakes a reader blocked on a daemon that went silent.
        try { _stream.Dispose(); } catch (IOException) { }
    }

    public async ValueTask DisposeAsync()
    {
        Fail(new XenStoreConnectionException($"the xenstore client for {_description} was disposed"));
        // A read blocked in the xenbus driver is not interrupted by closing the file, so waiting for the
        // reader loop is bounded; everything the caller can observe has already failed above.
        try
        {
            await _readerLoop.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }
}

/// <summary>Carries the errno name from the reader loop to the request, which adds operation and path.</summary>
internal sealed class XenStoreErrorReply(string errnoName) : Exception(errnoName)
{
    public string ErrnoName { get; } = errnoName;
}
