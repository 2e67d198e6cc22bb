using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>
/// A level-triggered epoll set that reports which member fd is readable, by a caller-chosen token.
/// It lets one waiter watch many eventfds (one per event-channel port) and, because the epoll fd is
/// itself pollable, that wait goes through <see cref="FdPoller"/> like any other.
/// </summary>
public sealed unsafe class EpollSet : IDisposable
{
    private readonly SafeFd _epoll;

    public EpollSet()
    {
        int fd = LibC.epoll_create1(LibC.EPOLL_CLOEXEC);
        if (fd < 0)
            throw LinuxCallException.FromErrno("epoll_create1");
        _epoll = new SafeFd(fd);
    }

    /// <summary>The epoll descriptor itself: it polls readable while any member is readable.</summary>
    public int Fd => _epoll.Fd;

    public void Add(SafeFd fd, ulong token)
    {
        var ev = new epoll_event { events = LibC.EPOLLIN };
        ev.data.u64 = token;
        if (LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_ADD, fd.Fd, &ev) != 0)
            throw LinuxCallException.FromErrno("epoll_ctl(ADD)");
    }

    /// <summary>
    /// Adds a descriptor this set does not own (an event-channel handle's or an I/O engine's
    /// pollable fd): its owner keeps it open at least as long as it stays a member.
    /// </summary>
    public void Add(int fd, ulong token)
    {
        var ev = new epoll_event { events = LibC.EPOLLIN };
        ev.data.u64 = token;
        if (LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_ADD, fd, &ev) != 0)
            throw LinuxCallException.FromErrno("epoll_ctl(ADD)");
    }

    /// <summary>
    /// Blocks the calling thread (a dedicated worker, never a pool thread) until a member is readable
    /// or <paramref name="timeoutMilliseconds"/> passes (-1: forever); writes the ready members'
    /// tokens and returns how many (0 on timeout). EINTR is retried.
    /// </summary>
    public int Wait(Span<ulong> tokens, int timeoutMilliseconds)
    {
        if (tokens.IsEmpty)
            throw new ArgumentException("no room for a token", nameof(tokens));
        int max = Math.Min(tokens.Length, 16);
        epoll_event* events = stackalloc epoll_event[max];
        while (true)
        {
            int n = LibC.epoll_wait(_epoll.Fd, events, max, timeoutMilliseconds);
            if (n < 0 && LibC.errno == LibC.EINTR)
                continue;
            if (n < 0)
                throw LinuxCallException.FromErrno("epoll_wait");
            for (int i = 0; i < n; i++)
                tokens[i] = events[i].data.u64;
            return n;
        }
    }

    /// <summary>Removes a member; removing one that is not in the set is not an error.</summary>
    public void Remove(SafeFd fd)
    {
        epoll_event unused = default;
        if (LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_DEL, fd.Fd, &unused) != 0 && LibC.errno != LibC.ENOENT)
            throw LinuxCallException.FromErrno("epoll_ctl(DEL)");
    }

    /// <summary>The token of one readable member, without blocking. epoll rotates its ready list, so no member starves.</summary>
    public bool TryTake(out ulong token)
    {
        epoll_event ev;
        while (true)
        {
            int n = LibC.epoll_wait(_epoll.Fd, &ev, 1, 0);
            if (n < 0 && LibC.errno == LibC.EINTR)
                continue;
            if (n < 0)
                throw LinuxCallException.FromErrno("epoll_wait");
            token = n == 1 ? ev.data.u64 : 0;
            return n == 1;
        }
    }

    /// <summary>Completes once some member is readable.</summary>
    public Task WaitAsync(CancellationToken cancellationToken) => FdPoller.Shared.WaitReadableAsync(_epoll, cancellationToken);

    public void Dispose() => _epoll.Dispose();
}
