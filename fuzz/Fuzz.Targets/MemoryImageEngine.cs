using System.Buffers.Binary;
using System.Runtime.InteropServices;
using XenBackends.Native.IO;
using XenBackends.Native.Linux;

namespace XenBackends.Fuzz;

/// <summary>
/// The block target's disk: an in-memory image behind the real <see cref="IIoEngine"/> contract,
/// completing every request at once (as the null image's engine does) so one input is one
/// synchronous run. It is also the invariant "nothing outside the image is ever addressed": every
/// request is checked against the image before it touches it. Faults chosen by the input (EIO,
/// short transfers, EOPNOTSUPP for flush and discard) exercise the backend's completion paths.
/// </summary>
internal sealed class MemoryImageEngine(byte[] image, int capacity, byte faults, byte faultSeed) : IIoEngine
{
    private const int IovecSize = 16;
    private const int EIO = 5, EOPNOTSUPP = 95;
    private readonly Queue<IoCompletion> _done = new();
    private readonly EventFd _neverSignalled = EventFd.Create();
    private int _requests;

    public string Name => "fuzz-memory";
    public int Capacity => capacity;
    public int InFlight => _done.Count;
    /// <summary>Completions are reaped in the same service pass; nothing ever waits on this fd.</summary>
    public int CompletionFd => _neverSignalled.Handle.Fd;

    public List<(long Offset, long Length)> Writes { get; } = [];

    public bool TryEnqueue(in IoRequest request)
    {
        if (_done.Count == capacity)
            return false;
        int k = _requests++;
        bool inject = (k * 37 + faultSeed) % 5 == 0;
        int result = request.Op switch
        {
            IoOp.ReadVector or IoOp.WriteVector => Vector(request, inject),
            IoOp.Flush => inject && (faults & 1) != 0 ? -EOPNOTSUPP : inject && (faults & 2) != 0 ? -EIO : 0,
            IoOp.PunchHole or IoOp.ZeroRange => Discard(request, inject),
            _ => throw new InvariantViolation($"the backend asked a file image for {request.Op}"),
        };
        _done.Enqueue(new IoCompletion(request.Tag, result));
        return true;
    }

    private void CheckRange(long offset, long length, string what)
    {
        InvariantViolation.Check(offset >= 0 && length >= 0 && offset % 512 == 0 && length % 512 == 0,
            () => $"{what} at {offset}+{length}: not whole 512-byte sectors");
        InvariantViolation.Check(offset + length <= image.Length, () => $"{what} at {offset}+{length} is outside the {image.Length}-byte image");
    }

    private int Vector(in IoRequest request, bool inject)
    {
        long count = request.Length;
        InvariantViolation.Check(count is >= 1 and <= 4096, () => $"{count} iovecs");
        var iov = new byte[count * IovecSize];
        Marshal.Copy(request.Buffer, iov, 0, iov.Length);
        long total = 0;
        for (int i = 0; i < count; i++)
        {
            long length = BinaryPrimitives.ReadInt64LittleEndian(iov.AsSpan(i * IovecSize + 8));
            InvariantViolation.Check(length is > 0 and <= 4096 && length % 512 == 0, () => $"iovec {i} of {length} bytes");
            total += length;
        }
        bool write = request.Op == IoOp.WriteVector;
        CheckRange(request.Offset, total, write ? "a write" : "a read");
        if (inject && (faults & 2) != 0)
            return -EIO;
        // A short transfer (ENOSPC after a partial write, EOF): only the first iovec moves.
        if (inject && (faults & 4) != 0 && count > 1)
            count = 1;
        long at = request.Offset;
        for (int i = 0; i < count; i++)
        {
            nint address = (nint)BinaryPrimitives.ReadInt64LittleEndian(iov.AsSpan(i * IovecSize));
            int length = (int)BinaryPrimitives.ReadInt64LittleEndian(iov.AsSpan(i * IovecSize + 8));
            if (write)
            {
                Marshal.Copy(address, image, (int)at, length);
                Writes.Add((at, length));
            }
            else
            {
                Marshal.Copy(image, (int)at, address, length);
            }
            at += length;
        }
        return (int)(at - request.Offset);
    }

    private int Discard(in IoRequest request, bool inject)
    {
        CheckRange(request.Offset, request.Length, "a discard");
        if (inject && (faults & 8) != 0)
            return -EOPNOTSUPP;
        image.AsSpan((int)request.Offset, (int)request.Length).Clear();
        Writes.Add((request.Offset, request.Length));
        return 0;
    }

    public void Submit()
    {
    }

    public int Reap(Span<IoCompletion> completions)
    {
        int n = 0;
        while (n < completions.Length && _done.TryDequeue(out IoCompletion c))
            completions[n++] = c;
        return n;
    }

    public void WaitForCompletion(int timeoutMilliseconds)
    {
    }

    public void Dispose() => _neverSignalled.Dispose();
}
