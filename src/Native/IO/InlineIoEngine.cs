namespace XenBackends.Native.IO;

/// <summary>
/// Runs every request to completion inside <see cref="TryEnqueue"/>, with a blocking syscall on the
/// caller's own thread: no hand-off, no wake-up, no completion eventfd write. Only right for an
/// image whose data already lives in memory (tmpfs, ramfs): there a preadv/pwritev is a memcpy to
/// or from the page cache and cannot wait for a device, while handing it to another thread costs a
/// futex wake-up, an eventfd write and a context switch, more than the copy itself (Block.Bench,
/// backend CPU per 4 KiB request on tmpfs: 2.7-4.1 us through <see cref="ThreadIoEngine"/>,
/// 1.25-1.3 us inline). On a disk
/// filesystem one slow request would stall the whole ring, which is why Auto never picks it there.
/// </summary>
/// <remarks>
/// tmpfs pages can be swapped out; a read of a swapped page then blocks the ring for the swap-in,
/// as it would block a thread engine's worker. That is the price of the shortcut, accepted because
/// an image on tmpfs is chosen for speed and swapped tmpfs is already slow for every user.
/// </remarks>
public sealed class InlineIoEngine : IIoEngine
{
    private readonly IoCompletion[] _done;
    private readonly int _neverSignalled;
    private int _head, _count;

    public InlineIoEngine(int capacity = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _done = new IoCompletion[capacity];
        _neverSignalled = Syscall.CreateEventFd();
    }

    public string Name => "inline";

    public int Capacity => _done.Length;

    public int InFlight => _count;

    /// <summary>Never signalled: completions exist before <see cref="TryEnqueue"/> returns.</summary>
    public int CompletionFd => _neverSignalled;

    public bool CompletesInline => true;

    public bool TryEnqueue(in IoRequest request)
    {
        if (_count == _done.Length)
            return false;
        int result = Syscall.Execute(request);
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

    public void Dispose() => Syscall.Close(_neverSignalled);
}
