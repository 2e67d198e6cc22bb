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
internal sealed class NullIoEngine(int capacity) : SynchronousIoEngine(capacity)
{
    private const int IovecSize = 16;

    public override string Name => "null";

    protected override int Execute(in IoRequest request) => checked((int)(request.Op switch
    {
        IoOp.Read => Zero(request.Buffer, checked((int)request.Length)),
        IoOp.Write => request.Length,
        IoOp.ReadVector => VectorLength(request, zero: true),
        IoOp.WriteVector => VectorLength(request, zero: false),
        _ => 0,
    }));

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
}
