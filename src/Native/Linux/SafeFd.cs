using System.Runtime.InteropServices;
using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>An owned Linux file descriptor, closed exactly once even if several threads race to dispose it.</summary>
public sealed class SafeFd : SafeHandle
{
    public SafeFd() : base(-1, ownsHandle: true) { }

    /// <summary>Takes ownership of <paramref name="fd"/> (it is closed when this handle is disposed).</summary>
    public SafeFd(int fd) : base(-1, ownsHandle: true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        SetHandle(fd);
    }

    public override bool IsInvalid => handle < 0;

    /// <summary>The descriptor number; only meaningful while this handle is alive.</summary>
    public int Fd
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsClosed, this);
            return (int)handle;
        }
    }

    /// <summary>A second, independently owned descriptor for the same open file (close-on-exec).</summary>
    public SafeFd Duplicate()
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            int copy = LibC.fcntl((int)handle, LibC.F_DUPFD_CLOEXEC, 0);
            if (copy < 0)
                throw LinuxCallException.FromErrno("fcntl(F_DUPFD_CLOEXEC)");
            return new SafeFd(copy);
        }
        finally
        {
            if (added)
                DangerousRelease();
        }
    }

    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}
