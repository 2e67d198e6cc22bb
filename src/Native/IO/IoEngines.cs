namespace XenBackends.Native.IO;

/// <summary>Which engine a backend asked for in its configuration.</summary>
public enum IoEngineKind { Auto, IoUring, Threads }

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
            default:
                try { return IoUringEngine.Create(capacity); }
                catch (XenNativeException) { return new ThreadIoEngine(capacity, threads); }
        }
    }
}
