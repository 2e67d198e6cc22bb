namespace XenBackends.Native.IO;

/// <summary>Which engine a backend asked for in its configuration.</summary>
public enum IoEngineKind
{
    /// <summary>io_uring, threads where io_uring would only punt to its workers, inline on tmpfs/ramfs (see the block queue's choice).</summary>
    Auto,
    IoUring,
    Threads,
    /// <summary>
    /// Blocking syscalls on the ring's own thread (<see cref="InlineIoEngine"/>): for images in memory
    /// only. Asked for on a disk or network filesystem, a stalled device stalls the whole ring, and a
    /// disconnect cannot abandon a syscall that never returns (the drain timeout cannot help).
    /// </summary>
    Inline,
}

public static class IoEngines
{
    /// <summary>
    /// Auto prefers io_uring and falls back to threads when the kernel refuses it; asking for io_uring
    /// explicitly makes a refusal an error the administrator sees.
    /// </summary>
    public static IIoEngine Create(IoEngineKind kind, int capacity, int threads = 4)
    {
        switch (kind)
        {
            case IoEngineKind.Threads:
                return new ThreadIoEngine(capacity, threads);
            case IoEngineKind.IoUring:
                return IoUringEngine.Create(capacity);
            case IoEngineKind.Inline:
                return new InlineIoEngine(capacity);
            default:
                try { return IoUringEngine.Create(capacity); }
                catch (XenNativeException) { return new ThreadIoEngine(capacity, threads); }
        }
    }
}
