namespace XenBackends.Fuzz;

/// <summary>
/// A xenstore daemon that says exactly what the input says: writes (the client's requests) are
/// counted and dropped; reads wait until <paramref name="requestsBeforeReplies"/> requests were
/// written (so replies can name them), then hand out the script in chunks of the chosen size, then
/// end of stream.
/// </summary>
internal sealed class ScriptedStream(byte[] script, int chunk, int requestsBeforeReplies) : Stream
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _writes, _at;

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Wrote();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Wrote();
        return ValueTask.CompletedTask;
    }

    private void Wrote()
    {
        if (Interlocked.Increment(ref _writes) >= requestsBeforeReplies)
            _ready.TrySetResult();
    }

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        _ready.Task.Wait();
        int n = Math.Min(Math.Min(buffer.Length, chunk), script.Length - _at);
        script.AsSpan(_at, n).CopyTo(buffer);
        _at += n;
        return n;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await _ready.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return Read(buffer.Span);
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
