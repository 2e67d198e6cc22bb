using Tmds.Linux;
using XenBackends.Native.Xen;

namespace XenBackends.Native.Tests.Xen;

/// <summary>
/// Stands in for libxenevtchn with a pipe in place of /dev/xen/evtchn: the kernel driver's fd yields
/// 4-byte port numbers to read() and is pollable, and so is a pipe. <see cref="Raise"/> plays the
/// remote domain kicking a port. Pending() reads the pipe like the library's read(fd, &amp;port, 4), so
/// calling it on an empty pipe would block, exactly the hazard poll-before-pending prevents.
/// </summary>
internal sealed unsafe class PipeEvtchn : IXenEvtchn, IDisposable
{
    public const nint Handle = 0xe7c;
    private readonly int _readFd;
    private readonly int _writeFd;

    public PipeEvtchn()
    {
        int* fds = stackalloc int[2];
        if (LibC.pipe2(fds, LibC.O_CLOEXEC) != 0)
            throw new InvalidOperationException($"pipe2 failed: errno {LibC.errno}");
        _readFd = fds[0];
        _writeFd = fds[1];
    }

    public int OpenErrno { get; set; }
    public Exception? OpenThrows { get; set; }
    /// <summary>errno for bind/notify/unmask/unbind; 0 means they succeed.</summary>
    public int CallErrno { get; set; }
    public int PendingCalls;
    public int CloseCalls { get; private set; }
    public List<(string Call, uint Port)> Calls { get; } = [];

    public void Raise(uint port)
    {
        if (LibC.write(_writeFd, &port, sizeof(uint)) != sizeof(uint))
            throw new InvalidOperationException($"write to the fake evtchn pipe failed: errno {LibC.errno}");
    }

    public nint Open(out int errno)
    {
        if (OpenThrows is not null)
            throw OpenThrows;
        errno = OpenErrno;
        return errno == 0 ? Handle : 0;
    }

    public int Close(nint xce)
    {
        CloseCalls++;
        ClosePipe();
        return 0;
    }

    /// <summary>For tests whose open failed, so no handle ever closes the pipe.</summary>
    public void Dispose()
    {
        if (CloseCalls == 0)
            ClosePipe();
    }

    private void ClosePipe()
    {
        LibC.close(_readFd);
        LibC.close(_writeFd);
    }

    public int Fd(nint xce) => _readFd;

    public int BindInterdomain(nint xce, uint domid, uint remotePort, out int errno)
    {
        Calls.Add(("bind", remotePort));
        errno = CallErrno;
        return errno == 0 ? (int)(remotePort + 100) : -1;
    }

    public int Notify(nint xce, uint port, out int errno) => Record("notify", port, out errno);

    public int Unmask(nint xce, uint port, out int errno) => Record("unmask", port, out errno);

    public int Unbind(nint xce, uint port, out int errno) => Record("unbind", port, out errno);

    public int Pending(nint xce, out int errno)
    {
        Interlocked.Increment(ref PendingCalls);
        uint port;
        long n = LibC.read(_readFd, &port, sizeof(uint));
        errno = n == sizeof(uint) ? 0 : n < 0 ? LibC.errno : LibC.EIO;
        return errno == 0 ? (int)port : -1;
    }

    private int Record(string call, uint port, out int errno)
    {
        Calls.Add((call, port));
        errno = CallErrno;
        return errno == 0 ? 0 : -1;
    }
}
