using Tmds.Linux;
using XenBackends.Native.Linux;

namespace XenBackends.Native.Tap;

/// <summary>
/// The blocking epoll a per-queue data-path thread sleeps in: event-channel poll fds, the tap fd and
/// a stop eventfd, each reported by a caller-chosen token. Level-triggered, so anything left
/// unconsumed is reported again on the next wait instead of being lost.
/// </summary>
public sealed unsafe class QueuePoll : IDisposable
{
    private const int MaxEvents = 8;
    private readonly SafeFd _epoll;

    public QueuePoll()
    {
        int fd = LibC.epoll_create1(LibC.EPOLL_CLOEXEC);
        if (fd < 0)
            throw LinuxCallException.FromErrno("epoll_create1");
        _epoll = new SafeFd(fd);
    }

    /// <summary>Watches a descriptor owned elsewhere (it must stay open while registered).</summary>
    public void Add(int fd, ulong token)
    {
        var ev = new epoll_event { events = LibC.EPOLLIN };
        ev.data.u64 = token;
        if (LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_ADD, fd, &ev) != 0)
            throw LinuxCallException.FromErrno("epoll_ctl(ADD)");
    }

    /// <summary>
    /// Stops watching <paramref name="fd"/>. Needed for a tap fd whose interface was deleted: its poll
    /// reports EPOLLERR, which epoll delivers whatever events were asked for, so a level-triggered
    /// watch on it would wake the thread forever.
    /// </summary>
    public void Remove(int fd)
    {
        var ev = default(epoll_event);
        if (LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_DEL, fd, &ev) != 0 && LibC.errno != LibC.ENOENT)
            throw LinuxCallException.FromErrno("epoll_ctl(DEL)");
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> (-1: forever) and returns a bit mask of the ready
    /// tokens (tokens are bit numbers 0..63), 0 on timeout.
    /// </summary>
    public ulong Wait(int timeoutMs)
    {
        epoll_event* events = stackalloc epoll_event[MaxEvents];
        while (true)
        {
            int n = LibC.epoll_wait(_epoll.Fd, events, MaxEvents, timeoutMs);
            if (n < 0)
            {
                if (LibC.errno == LibC.EINTR)
                    continue;
                throw LinuxCallException.FromErrno("epoll_wait");
            }
            ulong mask = 0;
            for (int i = 0; i < n; i++)
                mask |= 1UL << (int)(events[i].data.u64 & 63);
            return mask;
        }
    }

    public void Dispose() => _epoll.Dispose();
}
