using Tmds.Linux;

namespace XenBackends.Native.Xen;

/// <summary>An eventfd whose only use is to wake a thread blocked in poll().</summary>
internal sealed unsafe class WakeupEventFd : IDisposable
{
    private int _fd;

    public WakeupEventFd()
    {
        _fd = LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK);
        if (_fd < 0)
            throw XenErrno.CallFailed("eventfd", LibC.errno, "creating the wake-up eventfd");
    }

    public int Fd => _fd;

    public void Signal()
    {
        ulong one = 1;
        // EAGAIN means the counter is already non-zero: the poller will wake either way.
        LibC.write(_fd, &one, sizeof(ulong));
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
            LibC.close(fd);
    }
}
