namespace XenBackends.Native.IO;

/// <summary>
/// Runs requests on a few dedicated threads with blocking syscalls. It is the fallback when io_uring
/// is unavailable (old kernel, seccomp, io_uring_disabled) and the path for ops io_uring cannot do on
/// Debian 12's kernel (BLKDISCARD, BLKZEROOUT). Queues are fixed arrays: nothing is allocated per
/// request.
/// </summary>
public sealed class ThreadIoEngine : IIoEngine
{
    private readonly object _gate = new();
    private readonly IoRequest[] _submitted;     // ring of requests handed to the threads
    private readonly IoCompletion[] _completed;  // ring of finished requests
    private readonly IoRequest[] _staged;        // enqueued by the owner, not yet submitted
    private readonly Thread[] _threads;
    private readonly bool _ownsEventFd;
    private int _submittedHead, _submittedCount, _completedHead, _completedCount, _stagedCount;
    private int _inFlight;
    private bool _stopping;

    public ThreadIoEngine(int capacity = 256, int threads = 4) : this(capacity, threads, eventFd: -1) { }

    /// <summary>Signals <paramref name="eventFd"/> on completion when given (shared with io_uring).</summary>
    internal ThreadIoEngine(int capacity, int threads, int eventFd)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        Capacity = capacity;
        _submitted = new IoRequest[capacity];
        _completed = new IoCompletion[capacity];
        _staged = new IoRequest[capacity];
        _ownsEventFd = eventFd < 0;
        CompletionFd = _ownsEventFd ? Syscall.CreateEventFd() : eventFd;
        _threads = new Thread[threads];
        for (int i = 0; i < threads; i++)
        {
            _threads[i] = new Thread(Work) { IsBackground = true, Name = $"io-{i}" };
            _threads[i].Start();
        }
    }

    public string Name => "threads";

    public int Capacity { get; }

    public int InFlight => _inFlight;

    public int CompletionFd { get; }

    public bool TryEnqueue(in IoRequest request)
    {
        if (_inFlight == Capacity) return false;
        _staged[_stagedCount++] = request;
        _inFlight++;
        return true;
    }

    public void Submit()
    {
        if (_stagedCount == 0) return;
        lock (_gate)
        {
            for (int i = 0; i < _stagedCount; i++)
                _submitted[(_submittedHead + _submittedCount++) % Capacity] = _staged[i];
            Monitor.PulseAll(_gate);
        }
        _stagedCount = 0;
    }

    public int Reap(Span<IoCompletion> completions)
    {
        // With a shared eventfd the owner drains it, once, before reaping every source: a second
        // drain here could swallow the wakeup for a completion the owner has not reaped yet.
        if (_ownsEventFd)
            Syscall.DrainEventFd(CompletionFd);
        int n = 0;
        lock (_gate)
        {
            while (n < completions.Length && _completedCount > 0)
            {
                completions[n++] = _completed[_completedHead];
                _completedHead = (_completedHead + 1) % Capacity;
                _completedCount--;
            }
        }
        _inFlight -= n;
        if (_ownsEventFd && n > 0 && HasCompletions)
            Syscall.SignalEventFd(CompletionFd); // more left than the caller took: stay readable
        return n;
    }

    /// <summary>True when completions are queued (for an engine that shares the eventfd).</summary>
    internal bool HasCompletions
    {
        get { lock (_gate) return _completedCount > 0; }
    }

    public void WaitForCompletion(int timeoutMilliseconds) => Syscall.WaitReadable(CompletionFd, timeoutMilliseconds);

    private void Work()
    {
        while (true)
        {
            IoRequest request;
            lock (_gate)
            {
                while (_submittedCount == 0 && !_stopping) Monitor.Wait(_gate);
                if (_stopping) return;
                request = _submitted[_submittedHead];
                _submittedHead = (_submittedHead + 1) % Capacity;
                _submittedCount--;
            }
            int result = Syscall.Execute(request);
            lock (_gate)
            {
                // Capacity bounds in-flight requests, so this ring cannot overflow.
                _completed[(_completedHead + _completedCount++) % Capacity] = new IoCompletion(request.Tag, result);
            }
            Syscall.SignalEventFd(CompletionFd);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_stopping) return;
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        // A thread inside a syscall finishes it first; requests still queued are abandoned, which is
        // only safe because the owner disposes after it stopped caring about their buffers.
        foreach (var t in _threads) t.Join();
        if (_ownsEventFd) Syscall.Close(CompletionFd);
    }
}
