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
