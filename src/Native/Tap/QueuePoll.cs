using System.Runtime.InteropServices;
using Tmds.Linux;
using XenBackends.Native.Linux;

namespace XenBackends.Native.Tap;

/// <summary>
/// The blocking epoll a per-queue data-path thread sleeps in: event-channel poll fds, the tap fd and
/// a stop eventfd, each reported by a caller-chosen token. Level-triggered, so anything left
/// unconsumed is reported again on the next wait instead of being lost.
/// </summary>
public sealed unsafe partial class QueuePoll : IDisposable
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

    /// <summary>
    /// Keeps <paramref name="fd"/> registered but stops it from waking <see cref="Wait"/> (no events
    /// asked for; EPOLLERR and EPOLLHUP still report, which a caller treats as readiness anyway).
    /// </summary>
    public void Pause(int fd, ulong token) => Modify(fd, token, 0);

    /// <summary>Undoes <see cref="Pause"/>.</summary>
    public void Resume(int fd, ulong token) => Modify(fd, token, LibC.EPOLLIN);

    private void Modify(int fd, ulong token, int events)
    {
        var ev = new epoll_event { events = events };
        ev.data.u64 = token;
        if (LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_MOD, fd, &ev) != 0)
            throw LinuxCallException.FromErrno("epoll_ctl(MOD)");
    }

    /// <summary>
    /// As <see cref="Wait"/> with a timeout in microseconds (epoll_pwait2, Linux 5.11): epoll_wait
    /// rounds up to whole milliseconds, too coarse for interrupt coalescing. The thread's timer
    /// slack (<see cref="TrySetThreadTimerSlack"/>) bounds how late it returns.
    /// </summary>
    public ulong WaitMicroseconds(long timeoutUs)
    {
        // A kernel before 5.11 has no epoll_pwait2: whole milliseconds it is, rounded up, which
        // still coalesces (more coarsely) instead of failing the queue.
        if (!s_pwait2)
            return Wait((int)Math.Min((timeoutUs + 999) / 1000, int.MaxValue));
        epoll_event* events = stackalloc epoll_event[MaxEvents];
        var timeout = new Timespec { Seconds = timeoutUs / 1_000_000, Nanoseconds = timeoutUs % 1_000_000 * 1000 };
        while (true)
        {
            int n = epoll_pwait2(_epoll.Fd, events, MaxEvents, &timeout, null);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == LibC.EINTR)
                    continue;
                if (errno == LibC.ENOSYS)
                {
                    s_pwait2 = false;
                    return WaitMicroseconds(timeoutUs);
                }
                throw new LinuxCallException("epoll_pwait2", errno);
            }
            ulong mask = 0;
            for (int i = 0; i < n; i++)
                mask |= 1UL << (int)(events[i].data.u64 & 63);
            return mask;
        }
    }

    /// <summary>
    /// Sets the calling thread's timer slack (PR_SET_TIMERSLACK): the default 50 us would let a
    /// 20 us coalescing wait last 70 us. False if the kernel refused (waits are then just coarser).
    /// </summary>
    public static bool TrySetThreadTimerSlack(long nanoseconds) =>
        prctl(PrSetTimerSlack, (nuint)nanoseconds, 0, 0, 0) == 0;

    private const int PrSetTimerSlack = 29;
    private static bool s_pwait2 = true;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "epoll_pwait2", SetLastError = true)]
    private static partial int epoll_pwait2(int epfd, epoll_event* events, int maxevents, Timespec* timeout, void* sigmask);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    public void Dispose() => _epoll.Dispose();
}
