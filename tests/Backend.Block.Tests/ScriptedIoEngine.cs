using XenBackends.Native.IO;
using XenBackends.Native.Linux;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// An I/O engine test double: each request's result comes from <paramref name="script"/> (bytes or a
/// negated errno), and a null result means the request never completes, like I/O on a dead NFS
/// server or a suspended device-mapper target. Everything it is asked to do is recorded.
/// </summary>
internal sealed class ScriptedIoEngine(int capacity, Func<IoRequest, int?> script) : IIoEngine
{
    private readonly Queue<IoCompletion> _done = new();
    private readonly EventFd _wake = EventFd.Create();
    private int _hung;

    public List<IoOp> Requests { get; } = [];

    public string Name => "scripted";
    public int Capacity => capacity;
    public int InFlight => _done.Count + _hung;
    public int CompletionFd => _wake.Handle.Fd;

    /// <summary>Requests that will never complete.</summary>
    public int Hung => Volatile.Read(ref _hung);

    public bool TryEnqueue(in IoRequest request)
    {
        if (InFlight == capacity) return false;
        lock (Requests) Requests.Add(request.Op);
        int? result = script(request);
        if (result is { } r)
            _done.Enqueue(new IoCompletion(request.Tag, r));
        else
            Interlocked.Increment(ref _hung);
        return true;
    }

    public void Submit()
    {
        if (_done.Count > 0) _wake.Signal();
    }

    public int Reap(Span<IoCompletion> completions)
    {
        _wake.TryConsume(out _);
        int n = 0;
        while (n < completions.Length && _done.TryDequeue(out var c))
            completions[n++] = c;
        return n;
    }

    public void WaitForCompletion(int timeoutMilliseconds) => throw new NotSupportedException();

    public bool Disposed { get; private set; }

    public void Dispose()
    {
        Disposed = true;
        _wake.Dispose();
    }
}
