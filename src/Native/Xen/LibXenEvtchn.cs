using System.Runtime.InteropServices;

namespace XenBackends.Native.Xen;

/// <summary>libxenevtchn.so.1 (xenevtchn.h), bound with source-generated P/Invoke.</summary>
internal sealed partial class LibXenEvtchn : IXenEvtchn
{
    public const string Soname = "libxenevtchn.so.1";

    public static LibXenEvtchn Instance { get; } = new();

    /// <summary>Every symbol bound below, for the startup probe and the library test.</summary>
    public static IReadOnlyList<string> Exports { get; } =
    [
        nameof(xenevtchn_open), nameof(xenevtchn_close), nameof(xenevtchn_fd),
        nameof(xenevtchn_bind_interdomain), nameof(xenevtchn_notify), nameof(xenevtchn_pending),
        nameof(xenevtchn_unmask), nameof(xenevtchn_unbind),
    ];

    private LibXenEvtchn() { }

    public nint Open(out int errno)
    {
        // Flags 0 keeps O_CLOEXEC on the device fd, so exec'd workers do not inherit it.
        nint xce = xenevtchn_open(0, 0);
        errno = xce == 0 ? Marshal.GetLastPInvokeError() : 0;
        return xce;
    }

    public int Close(nint xce) => xenevtchn_close(xce);

    public int Fd(nint xce) => xenevtchn_fd(xce);

    public int BindInterdomain(nint xce, uint domid, uint remotePort, out int errno) =>
        Result(xenevtchn_bind_interdomain(xce, domid, remotePort), out errno);

    public int Notify(nint xce, uint port, out int errno) => Result(xenevtchn_notify(xce, port), out errno);

    public int Pending(nint xce, out int errno) => Result(xenevtchn_pending(xce), out errno);

    public int Unmask(nint xce, uint port, out int errno) => Result(xenevtchn_unmask(xce, port), out errno);

    public int Unbind(nint xce, uint port, out int errno) => Result(xenevtchn_unbind(xce, port), out errno);

    private static int Result(int rc, out int errno)
    {
        errno = rc < 0 ? Marshal.GetLastPInvokeError() : 0;
        return rc;
    }

    [LibraryImport(Soname, SetLastError = true)]
    private static partial nint xenevtchn_open(nint logger, uint flags);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xenevtchn_close(nint xce);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xenevtchn_fd(nint xce);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xenevtchn_bind_interdomain(nint xce, uint domid, uint remote_port);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xenevtchn_notify(nint xce, uint port);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xenevtchn_pending(nint xce);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xenevtchn_unmask(nint xce, uint port);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xenevtchn_unbind(nint xce, uint port);
}
