namespace XenBackends.Native.IO;

/// <summary>
/// Submits image I/O without blocking the caller and hands back completions by tag, in any order.
/// Owned by one thread (a ring's worker): Enqueue/Submit/Reap are not thread-safe. The worker sleeps
/// on <see cref="CompletionFd"/> (epoll) together with its event channel, so one thread serves both.
/// </summary>
public interface IIoEngine : IDisposable
{
    /// <summary>A short name for logs and status ("io_uring", "threads").</summary>
    string Name { get; }

    /// <summary>How many requests may be in flight (enqueued or submitted, not yet reaped).</summary>
    int Capacity { get; }

    int InFlight { get; }

    /// <summary>Queues one request; false when <see cref="Capacity"/> requests are already in flight.</summary>
    bool TryEnqueue(in IoRequest request);

    /// <summary>Hands everything enqueued since the last call to the kernel (one syscall where possible).</summary>
    void Submit();

    /// <summary>Copies finished requests into <paramref name="completions"/> without blocking; returns how many.</summary>
    int Reap(Span<IoCompletion> completions);

    /// <summary>Readable (eventfd semantics) whenever completions may be waiting; read it to re-arm.</summary>
    int CompletionFd { get; }

    /// <summary>Blocks until a completion is available or the timeout passes (-1: forever).</summary>
    void WaitForCompletion(int timeoutMilliseconds);

    /// <summary>
    /// True when every request is finished before <see cref="TryEnqueue"/> returns and
    /// <see cref="CompletionFd"/> is never signalled: the owner must reap in the same pass instead of
    /// sleeping on the fd (the inline and null engines).
    /// </summary>
    bool CompletesInline => false;
}
