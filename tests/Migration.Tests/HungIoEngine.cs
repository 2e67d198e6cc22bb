using XenBackends.Native.IO;
using XenBackends.Native.Linux;

namespace XenBackends.Migration.Tests;

/// <summary>An image whose I/O is accepted and never answered (a dead NFS server under the source host).</summary>
internal sealed class HungIoEngine(int capacity) : IIoEngine
{
    private readonly EventFd _never = EventFd.Create();
    private int _accepted;

    public static int TotalAccepted;

    public string Name => "hung";
    public int Capacity => capacity;
    public int InFlight => Volatile.Read(ref _accepted);
    public int CompletionFd => _never.Handle.Fd;

    public bool TryEnqueue(in IoRequest request)
    {
        if (InFlight == capacity) return false;
        Interlocked.Increment(ref _accepted);
        Interlocked.Increment(ref TotalAccepted);
        return true;
    }

    public void Submit() { }

    public int Reap(Span<IoCompletion> completions) => 0;

    public void WaitForCompletion(int timeoutMilliseconds)
    {
        if (timeoutMilliseconds > 0) Thread.Sleep(timeoutMilliseconds);
    }

    public void Dispose() => _never.Dispose();
}
