using System.IO.Pipelines;

namespace XenBackends.XenStore.Tests;

/// <summary>
/// A plain byte stream (no socket) built from two pipes: what the client sees of /dev/xen/xenbus is
/// exactly this, a stream carrying xsd_sockmsg frames. The other ends are the "daemon" side.
/// </summary>
public sealed class DuplexPipeStream : Stream
{
    private readonly Pipe _toClient = new();
    private readonly Pipe _fromClient = new();
    private readonly Stream _read;
    private readonly Stream _write;
    private long _written;

    public DuplexPipeStream()
    {
        _read = _toClient.Reader.AsStream();
        _write = _fromClient.Writer.AsStream();
    }

    /// <summary>Bytes the client wrote; "refused before sending" means this stays 0.</summary>
    public long BytesWritten => Interlocked.Read(ref _written);

    public PipeReader DaemonInput => _fromClient.Reader;
    public PipeWriter DaemonOutput => _toClient.Writer;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => _write.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => _write.FlushAsync(cancellationToken);
    public override int Read(byte[] buffer, int offset, int count) => _read.Read(buffer, offset, count);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _read.ReadAsync(buffer, cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count)
    {
        Interlocked.Add(ref _written, count);
        _write.Write(buffer, offset, count);
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Interlocked.Add(ref _written, buffer.Length);
        return _write.WriteAsync(buffer, cancellationToken);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            // Ends the client's reader as a closed socket would.
            _toClient.Writer.Complete();
            _fromClient.Writer.Complete();
        }
        base.Dispose(disposing);
    }
}
