namespace XenBackends.Native.IO;

/// <summary>What an <see cref="IIoEngine"/> can do; each maps to one syscall on the image's fd.</summary>
public enum IoOp : byte
{
    /// <summary>pread into one buffer.</summary>
    Read,
    /// <summary>pwrite from one buffer.</summary>
    Write,
    /// <summary>preadv: <see cref="IoRequest.Buffer"/> points at <see cref="IoRequest.Length"/> iovecs.</summary>
    ReadVector,
    /// <summary>pwritev, iovecs as for <see cref="ReadVector"/>.</summary>
    WriteVector,
    /// <summary>fdatasync: what BLKIF_OP_FLUSH_DISKCACHE and barriers promise the guest.</summary>
    Flush,
    /// <summary>fallocate(PUNCH_HOLE|KEEP_SIZE): discard on a file; reads of the range return zeros.</summary>
    PunchHole,
    /// <summary>fallocate(ZERO_RANGE|KEEP_SIZE): secure discard on a file.</summary>
    ZeroRange,
    /// <summary>ioctl(BLKDISCARD) on a block device.</summary>
    BlockDiscard,
    /// <summary>ioctl(BLKZEROOUT) on a block device: secure discard.</summary>
    BlockZeroOut,
}

/// <summary>
/// One asynchronous operation. Buffers (and iovec arrays) are raw addresses the caller keeps alive
/// and unmoved until the completion with the same <see cref="Tag"/> is reaped.
/// </summary>
public readonly record struct IoRequest(IoOp Op, int Fd, long Offset, nint Buffer, long Length, ulong Tag)
{
    public static IoRequest Read(int fd, long offset, nint buffer, int length, ulong tag) =>
        new(IoOp.Read, fd, offset, buffer, length, tag);

    public static IoRequest Write(int fd, long offset, nint buffer, int length, ulong tag) =>
        new(IoOp.Write, fd, offset, buffer, length, tag);

    public static IoRequest Flush(int fd, ulong tag) => new(IoOp.Flush, fd, 0, 0, 0, tag);
}

/// <summary>The outcome of one <see cref="IoRequest"/>: bytes transferred, or a negated errno.</summary>
public readonly record struct IoCompletion(ulong Tag, int Result)
{
    public bool Failed => Result < 0;

    public int Errno => Result < 0 ? -Result : 0;
}
