using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace XenBackends.Native.IO;

/// <summary>
/// A disk image opened for a backend: a regular file (sparse-aware) or a block device, with its size
/// and sector sizes as the kernel reports them. The fd is what <see cref="IIoEngine"/> requests use.
/// </summary>
public sealed unsafe class ImageFile : IDisposable
{
    private int _fd;

    private ImageFile(string path, int fd, bool writable, bool direct, bool blockDevice)
    {
        Path = path;
        _fd = fd;
        Writable = writable;
        Direct = direct;
        IsBlockDevice = blockDevice;
        Refresh();
    }

    public string Path { get; }

    public int Fd => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(ImageFile));

    public bool Writable { get; }

    /// <summary>Opened with O_DIRECT (buffers and offsets must then be aligned to the logical sector size).</summary>
    public bool Direct { get; }

    public bool IsBlockDevice { get; }

    /// <summary>
    /// The filesystem can read without blocking (RWF_NOWAIT), so io_uring completes cached reads
    /// inline; false means io_uring would punt every request to a kernel worker thread.
    /// </summary>
    public bool SupportsNoWaitReads => Syscall.SupportsNoWaitReads(Fd);

    /// <summary>
    /// The file lives in memory (tmpfs, ramfs: fstatfs magic), so a read or write is a page-cache copy
    /// that never waits for a device; false for block devices and every disk or network filesystem.
    /// </summary>
    public bool IsMemoryResident
    {
        get
        {
            if (IsBlockDevice)
                return false;
            // f_type is __fsword_t: compare the low 32 bits, as statfs(2) advises for portability.
            uint type = (uint)Syscall.FileSystemType(Fd);
            return type == (uint)Syscall.TMPFS_MAGIC || type == (uint)Syscall.RAMFS_MAGIC;
        }
    }

    public long SizeBytes { get; private set; }

    public int LogicalSectorSize { get; private set; } = 512;

    public int PhysicalSectorSize { get; private set; } = 512;

    /// <summary>
    /// Opens <paramref name="path"/>. With <paramref name="direct"/> it tries O_DIRECT first and
    /// quietly falls back when the filesystem refuses it (tmpfs does); <see cref="Direct"/> tells which.
    /// </summary>
    public static ImageFile Open(string path, bool writable, bool direct)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
        int fd = -1;
        bool usedDirect = false;
        if (direct)
        {
            fd = OpenRaw(path, flags | O_DIRECT);
            usedDirect = fd >= 0;
            if (fd < 0 && Syscall.Errno != EINVAL) throw OpenError(path, writable, Syscall.Errno);
        }
        if (fd < 0) fd = OpenRaw(path, flags);
        if (fd < 0) throw OpenError(path, writable, Syscall.Errno);

        stat st;
        if (fstat(fd, &st) != 0)
        {
            int e = Syscall.Errno;
            Syscall.Close(fd);
            throw new XenNativeException("fstat", e, $"cannot stat image {path}");
        }
        uint type = (uint)st.st_mode & (uint)S_IFMT;
        if (type != (uint)S_IFREG && type != (uint)S_IFBLK)
        {
            Syscall.Close(fd);
            throw new XenNativeException("open", EINVAL, $"image {path} is neither a regular file nor a block device");
        }
        try
        {
            return new ImageFile(path, fd, writable, usedDirect, type == (uint)S_IFBLK);
        }
        catch
        {
            Syscall.Close(fd);
            throw;
        }
    }

    /// <summary>Re-reads size and sector sizes, e.g. after the administrator grew the image.</summary>
    public void Refresh()
    {
        if (IsBlockDevice)
        {
            ulong bytes;
            int logical, physical;
            if (ioctl(Fd, Syscall.BLKGETSIZE64, &bytes) != 0)
                throw new XenNativeException("ioctl(BLKGETSIZE64)", Syscall.Errno, $"cannot size block device {Path}");
            if (ioctl(Fd, Syscall.BLKSSZGET, &logical) != 0) logical = 512;
            if (ioctl(Fd, Syscall.BLKPBSZGET, &physical) != 0) physical = logical;
            SizeBytes = (long)bytes;
            LogicalSectorSize = logical;
            PhysicalSectorSize = Math.Max(physical, logical);
        }
        else
        {
            stat st;
            if (fstat(Fd, &st) != 0)
                throw new XenNativeException("fstat", Syscall.Errno, $"cannot stat image {Path}");
            SizeBytes = st.st_size;
            LogicalSectorSize = 512;
            // The filesystem's block size is the granularity at which writes avoid read-modify-write
            // and punched holes actually free space.
            PhysicalSectorSize = Math.Max(512, (int)(long)st.st_blksize);
        }
    }

    private static int OpenRaw(string path, int flags)
    {
        int bytes = Encoding.UTF8.GetByteCount(path);
        Span<byte> z = bytes < 1024 ? stackalloc byte[bytes + 1] : new byte[bytes + 1];
        Encoding.UTF8.GetBytes(path, z);
        z[bytes] = 0;
        fixed (byte* p = z)
        {
            while (true)
            {
                int fd = open(p, flags, 0);
                if (fd >= 0 || Syscall.Errno != EINTR) return fd;
            }
        }
    }

    private static XenNativeException OpenError(string path, bool writable, int errno)
    {
        string why = errno == ENOENT ? "no such file"
            : errno == EACCES || errno == EPERM ? "permission denied"
            : errno == EROFS ? "read-only filesystem (use mode=r)"
            : errno == EISDIR ? "is a directory"
            : "open failed";
        return new XenNativeException("open", errno, $"cannot open image {path} {(writable ? "read-write" : "read-only")}: {why}");
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Syscall.Close(fd);
    }
}
