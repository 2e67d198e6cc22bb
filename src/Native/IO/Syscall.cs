using System.Runtime.InteropServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace XenBackends.Native.IO;

/// <summary>The blocking syscalls behind each <see cref="IoOp"/>; results follow the kernel's convention (-errno).</summary>
internal static unsafe partial class Syscall
{
    // Tmds.LibC 0.5 has pread/pwrite but not the vectored forms.
    [LibraryImport("libc", EntryPoint = "preadv", SetLastError = true)]
    private static partial nint preadv(int fd, void* iov, int iovcnt, long offset);

    [LibraryImport("libc", EntryPoint = "pwritev", SetLastError = true)]
    private static partial nint pwritev(int fd, void* iov, int iovcnt, long offset);

    [LibraryImport("libc", EntryPoint = "preadv2", SetLastError = true)]
    private static partial nint preadv2(int fd, void* iov, int iovcnt, long offset, int flags);

    private const int RWF_NOWAIT = 0x08;

    [LibraryImport("libc", EntryPoint = "fstatfs", SetLastError = true)]
    private static partial int fstatfs(int fd, void* buf);

    // linux/magic.h
    public const long TMPFS_MAGIC = 0x01021994;
    public const long RAMFS_MAGIC = unchecked((long)0x858458f6);

    /// <summary>
    /// f_type of the filesystem holding <paramref name="fd"/> (fstatfs), or 0 when it cannot be read.
    /// f_type is the first word of struct statfs on every Linux architecture; the buffer is larger
    /// than the 120-byte x86_64 struct so no layout has to be declared for one field.
    /// </summary>
    public static long FileSystemType(int fd)
    {
        long* buf = stackalloc long[32];
        return fstatfs(fd, buf) == 0 ? buf[0] : 0;
    }

    /// <summary>
    /// Whether the file's filesystem can read without blocking (FMODE_NOWAIT): io_uring's test for
    /// doing a read inline. Without it (tmpfs on 6.x) io_uring hands every request to an io-wq thread.
    /// Reads at most 512 bytes at offset 0 into a private buffer; the image is not changed.
    /// </summary>
    public static bool SupportsNoWaitReads(int fd)
    {
        byte* buffer = stackalloc byte[512];
        nint* iov = stackalloc nint[2] { (nint)buffer, 512 };
        return preadv2(fd, iov, 1, 0, RWF_NOWAIT) >= 0 || Errno != EOPNOTSUPP;
    }

    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;
    public const int FALLOC_FL_ZERO_RANGE = 0x10;

    // linux/fs.h: _IO(0x12, nr) and _IOR(0x12, 114, size_t).
    public const int BLKSSZGET = 0x1268;
    public const int BLKDISCARD = 0x1277;
    public const int BLKPBSZGET = 0x127b;
    public const int BLKZEROOUT = 0x127f;
    public const int BLKGETSIZE64 = unchecked((int)0x80081272);

    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>Runs one request to completion on the calling thread.</summary>
    public static int Execute(in IoRequest r)
    {
        switch (r.Op)
        {
            case IoOp.Read:
            case IoOp.Write:
                return Transfer(r.Op == IoOp.Write, r.Fd, (byte*)r.Buffer, checked((int)r.Length), r.Offset);
            case IoOp.ReadVector:
            case IoOp.WriteVector:
                return TransferVector(r.Op == IoOp.WriteVector, r.Fd, r.Buffer, checked((int)r.Length), r.Offset);
            case IoOp.Flush:
                return Result(fdatasync(r.Fd));
            case IoOp.PunchHole:
                return Fallocate(r.Fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, r.Offset, r.Length);
            case IoOp.ZeroRange:
                return Fallocate(r.Fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, r.Offset, r.Length);
            case IoOp.BlockDiscard:
            case IoOp.BlockZeroOut:
                ulong* range = stackalloc ulong[2] { (ulong)r.Offset, (ulong)r.Length };
                return Result(ioctl(r.Fd, r.Op == IoOp.BlockDiscard ? BLKDISCARD : BLKZEROOUT, range));
            default:
                return -EINVAL;
        }
    }

    // fdatasync, fallocate and the block ioctls are not restarted after a signal by the kernel; the
    // only signal our workers see is runtime-internal, so EINTR is reported like any other errno.
    private static int Fallocate(int fd, int mode, long offset, long length) =>
        Result(fallocate(fd, mode, offset, length));

    private static int Result(int rc) => rc == 0 ? 0 : -Errno;

    /// <summary>Keeps going after short transfers; stops at end of file (the result is then short).</summary>
    private static int Transfer(bool write, int fd, byte* buffer, int length, long offset)
    {
        int done = 0;
        while (done < length)
        {
            long n = write
                ? pwrite(fd, buffer + done, length - done, offset + done)
                : pread(fd, buffer + done, length - done, offset + done);
            if (n < 0)
            {
                int e = Errno;
                if (e == EINTR) continue;
                return -e;
            }
            if (n == 0) break;
            done += (int)n;
        }
        return done;
    }

    private static int TransferVector(bool write, int fd, nint iovecs, int count, long offset)
    {
        while (true)
        {
            nint n = write ? pwritev(fd, (void*)iovecs, count, offset) : preadv(fd, (void*)iovecs, count, offset);
            if (n >= 0) return checked((int)n);
            int e = Errno;
            if (e != EINTR) return -e;
        }
    }

    public static int CreateEventFd()
    {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) throw new XenNativeException("eventfd", Errno, "cannot create the completion eventfd");
        return fd;
    }

    public static void SignalEventFd(int fd)
    {
        ulong one = 1;
        // EAGAIN means the counter is saturated: the reader is already due to wake.
        write(fd, &one, 8);
    }

    public static void DrainEventFd(int fd)
    {
        ulong value;
        read(fd, &value, 8);
    }

    /// <summary>poll() for readability; true when readable before the timeout.</summary>
    public static bool WaitReadable(int fd, int timeoutMilliseconds)
    {
        pollfd p = default;
        p.fd = fd;
        p.events = (short)POLLIN;
        while (true)
        {
            int n = poll(&p, 1, timeoutMilliseconds);
            if (n >= 0) return n > 0;
            int e = Errno;
            if (e != EINTR) throw new XenNativeException("poll", e, "waiting for I/O completions");
        }
    }

    public static void Close(int fd)
    {
        if (fd >= 0) close(fd);
    }
}
