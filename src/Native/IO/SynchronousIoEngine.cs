using XenBackends.Native.Linux;

namespace XenBackends.Native.IO;

/// <summary>
/// An engine whose requests finish inside <see cref="TryEnqueue"/> (<see cref="IIoEngine.CompletesInline"/>):
/// it only keeps the completions until the owner reaps them in the same pass. Subclasses say how one
/// request is carried out.
/// </summary>
public abstract class SynchronousIoEngine : IIoEngine
{
    private readonly IoCompletion[] _done;
    // A SafeHandle, so a second Dispose cannot close a descriptor number reused meanwhile.
    private readonly EventFd _neverSignalled = EventFd.Create();
    private int _head, _count;

    protected SynchronousIoEngine(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _done = new IoCompletion[capacity];
    }

    public abstract string Name { get; }

    public int Capacity => _done.Length;

    public int InFlight => _count;

    /// <summary>Never signalled: completions exist before <see cref="TryEnqueue"/> returns.</summary>
    public int CompletionFd => _neverSignalled.Handle.Fd;

    public bool CompletesInline => true;

    /// <summary>Carries the request out now; returns what its completion reports (bytes or -errno).</summary>
    protected abstract int Execute(in IoRequest request);

    public bool TryEnqueue(in IoRequest request)
    {
        if (_count == _done.Length)
            return false;
        int result = Execute(request);
        _done[(_head + _count++) % _done.Length] = new IoCompletion(request.Tag, result);
        return true;
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
        // Nothing is ever outstanding: a request is finished when TryEnqueue returns.
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) => _neverSignalled.Dispose();
}
