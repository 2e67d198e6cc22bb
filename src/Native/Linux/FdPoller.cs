using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>
/// Turns "this fd became readable" into an awaitable: one background thread blocks in <c>epoll_wait</c>
/// for every waiter in the process, so an idle backend costs no CPU and no thread per wait. Each wait is
/// a one-shot registration; cancelling it removes the fd from the set before the task is cancelled.
/// </summary>
public sealed unsafe class FdPoller
{
    private static readonly Lazy<FdPoller> s_shared = new(() => new FdPoller());
    private readonly SafeFd _epoll;
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, Registration> _waiting = [];
    private readonly HashSet<int> _busyFds = [];
    private ulong _nextId = 1;

    private FdPoller()
    {
        int fd = LibC.epoll_create1(LibC.EPOLL_CLOEXEC);
        if (fd < 0)
            throw LinuxCallException.FromErrno("epoll_create1");
        _epoll = new SafeFd(fd);
        var thread = new Thread(Run) { IsBackground = true, Name = "fd poller" };
        thread.Start();
    }

    public static FdPoller Shared => s_shared.Value;

    /// <summary>
    /// Completes when <paramref name="fd"/> is readable (or hung up / in error, which a read then reports).
    /// One waiter per fd at a time: a second concurrent wait on the same fd is a caller bug and throws.
    /// </summary>
    public Task WaitReadableAsync(SafeFd fd, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fd);
        if (cancellationToken.IsCancellationRequested)
            return Task.FromCanceled(cancellationToken);
        var registration = new Registration(fd);
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            ulong id;
            lock (_lock)
            {
                if (!_busyFds.Add(registration.Number))
                    throw new InvalidOperationException($"fd {registration.Number} already has a waiter");
                id = _nextId++;
                var ev = new epoll_event { events = LibC.EPOLLIN | LibC.EPOLLONESHOT };
                ev.data.u64 = id;
                if (LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_ADD, registration.Number, &ev) != 0)
                {
                    var error = LinuxCallException.FromErrno("epoll_ctl(ADD)");
                    _busyFds.Remove(registration.Number);
                    throw error;
                }
                _waiting.Add(id, registration);
            }
            added = false; // the registration now owns the reference
            if (cancellationToken.CanBeCanceled)
                registration.Cancellation = cancellationToken.Register(() => Finish(id, cancellationToken));
            return registration.Completion.Task;
        }
        finally
        {
            if (added)
                fd.DangerousRelease();
        }
    }

    private void Finish(ulong id, CancellationToken? cancelled)
    {
        Registration? registration;
        lock (_lock)
        {
            if (!_waiting.Remove(id, out registration))
                return;
            epoll_event unused = default;
            _ = LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_DEL, registration.Number, &unused);
            _busyFds.Remove(registration.Number);
        }
        registration.Fd.DangerousRelease();
        registration.Cancellation.Dispose();
        if (cancelled is { } token)
            registration.Completion.TrySetCanceled(token);
        else
            registration.Completion.TrySetResult();
    }

    private void Run()
    {
        const int batch = 64;
        var events = stackalloc epoll_event[batch];
        while (true)
        {
            int n = LibC.epoll_wait(_epoll.Fd, events, batch, -1);
            if (n < 0)
            {
                if (LibC.errno == LibC.EINTR)
                    continue;
                // The epoll fd itself broke: nothing can be waited on any more, so fail every waiter loudly.
                FailAll(LinuxCallException.FromErrno("epoll_wait"));
                return;
            }
            for (int i = 0; i < n; i++)
                Finish(events[i].data.u64, null);
        }
    }

    private void FailAll(Exception error)
    {
        List<Registration> all;
        lock (_lock)
        {
            all = [.. _waiting.Values];
            _waiting.Clear();
            _busyFds.Clear();
        }
        foreach (var r in all)
        {
            r.Fd.DangerousRelease();
            r.Completion.TrySetException(error);
        }
    }

    private sealed class Registration(SafeFd fd)
    {
        public SafeFd Fd { get; } = fd;
        public int Number { get; } = fd.Fd;
        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public CancellationTokenRegistration Cancellation { get; set; }
    }
}
