using System.Buffers.Binary;
using XenBackends.Native.IO;
using XenBackends.Native.Linux;

namespace XenBackends.Backend.Block;

/// <summary>
/// The engine of a null image (Linux null_blk's role): every request completes inside
/// <see cref="TryEnqueue"/> with no syscall, reads fill their buffers with zeros so the guest never
/// sees stale bounce-buffer data, everything else is dropped. Its <see cref="CompletionFd"/> is never
/// signalled: the queue reaps it in the same service pass instead.
/// </summary>
internal sealed class NullIoEngine : IIoEngine
{
    private const int IovecSize = 16;
    private readonly IoCompletion[] _done;
    private readonly EventFd _neverSignalled = EventFd.Create();
    private int _head, _count;

    public NullIoEngine(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _done = new IoCompletion[capacity];
    }

    public string Name => "null";

    public int Capacity => _done.Length;

    public int InFlight => _count;

    public int CompletionFd => _neverSignalled.Handle.Fd;

    public bool CompletesInline => true;

    public bool TryEnqueue(in IoRequest request)
    {
        if (_count == _done.Length)
            return false;
        long result = request.Op switch
        {
            IoOp.Read => Zero(request.Buffer, checked((int)request.Length)),
            IoOp.Write => request.Length,
            IoOp.ReadVector => VectorLength(request, zero: true),
            IoOp.WriteVector => VectorLength(request, zero: false),
            _ => 0,
        };
        _done[(_head + _count++) % _done.Length] = new IoCompletion(request.Tag, checked((int)result));
        return true;
    }

    private static long Zero(nint buffer, int length)
    {
        UnmanagedSpan.FromAddress(buffer, length).Clear();
        return length;
    }

    private static long VectorLength(in IoRequest request, bool zero)
    {
        ReadOnlySpan<byte> iov = UnmanagedSpan.FromAddress(request.Buffer, checked((int)request.Length * IovecSize));
        long total = 0;
        for (int i = 0; i < request.Length; i++)
        {
            nint address = (nint)BinaryPrimitives.ReadInt64LittleEndian(iov[(i * IovecSize)..]);
            int length = checked((int)BinaryPrimitives.ReadInt64LittleEndian(iov[(i * IovecSize + 8)..]));
            if (zero)
                UnmanagedSpan.FromAddress(address, length).Clear();
            total += length;
        }
        return total;
    }

    public void Submit()
    {
    }

    public int Reap(Span<IoCompletion> completions)
    {
        int n = Math.Min(completions.Length, _count);
        for (int i = 0; i < n; i++)
        {
            completions[i] = _done[_head];
            _head = (_head + 1) % _done.Length;
        }
        _count -= n;
        return n;
    }

    public void WaitForCompletion(int timeoutMilliseconds)
    {
        // Nothing is ever outstanding: completions exist before TryEnqueue returns.
    }

    public void Dispose() => _neverSignalled.Dispose();
}
