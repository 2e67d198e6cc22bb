using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace XenBackends.Native.IO;

/// <summary>
/// A shared mapping of a whole image that lives in memory (tmpfs, ramfs), so request data can be
/// grant-copied straight between the guest's pages and the image's page-cache pages: one copy and no
/// file syscall per request.
/// </summary>
/// <remarks>
/// A store or load through a file mapping raises SIGBUS where the same pwrite or pread would have
/// returned an error: on a page past end of file (the file was truncated), and on a tmpfs hole that
/// cannot be filled because the filesystem is full. The .NET runtime turns SIGBUS into a process
/// crash, and on the simulated host the grant copy is a user-space memcpy. So a mapping is only
/// made, and only used, while neither can happen through anything a guest does:
/// <list type="bullet">
/// <item>it is made only when the file has no hole at all (<c>SEEK_HOLE</c> answers the size), so
/// every page it covers is already allocated and a store never allocates;</item>
/// <item>the backend never makes a hole in it: a discard zeroes through the mapping instead of
/// punching (<see cref="Zero"/>);</item>
/// <item>it is checked against the file's size before each ring drain that uses it
/// (<see cref="Revalidate"/>) and given up for good once the size differs (a resize or a truncation
/// by someone else): the backend then goes back to pread/pwrite, which report errors.</item>
/// </list>
/// What stays possible is an administrator truncating or hole-punching the image file while a drain
/// is copying: that race cannot be closed from user space (regular tmpfs files cannot be sealed
/// against shrinking, only memfds can), and it is documented as an administrator error. On real Xen
/// the copy is done by the hypervisor through gntdev, which reports such a page as EFAULT for the
/// whole grant-copy call instead.
/// <para>
/// The mapping is reference counted: every queue that may copy through it holds a reference, and it
/// is unmapped only when the last one is released, so a queue whose worker never stopped can never
/// touch an unmapped range.
/// </para>
/// </remarks>
public sealed unsafe class ImageMapping
{
    // unistd.h: whence for lseek(2) since Linux 3.1.
    private const int SEEK_HOLE = 4;

    private readonly int _fd;
    private int _references = 1;
    private int _disabled;

    private ImageMapping(int fd, nint address, long length, string path)
    {
        _fd = fd;
        Address = address;
        Length = length;
        Path = path;
    }

    /// <summary>The first byte of the image in this process.</summary>
    public nint Address { get; }

    /// <summary>The image size when it was mapped; every byte of it was allocated then.</summary>
    public long Length { get; }

    public string Path { get; }

    /// <summary>False once the mapping was given up (the size changed, or a copy through it failed).</summary>
    public bool IsUsable => Volatile.Read(ref _disabled) == 0;

    /// <summary>
    /// Maps <paramref name="file"/> if it is memory resident, non-empty and has no hole; null (with
    /// the reason) otherwise.
    /// </summary>
    public static ImageMapping? TryCreate(ImageFile file, out string reason)
    {
        if (!file.IsMemoryResident)
        {
            reason = "not on a memory filesystem";
            return null;
        }
        int fd = file.Fd;
        stat st;
        if (fstat(fd, &st) != 0)
        {
            reason = $"fstat failed (errno {Syscall.Errno})";
            return null;
        }
        long size = st.st_size;
        if (size <= 0)
        {
            reason = "empty image";
            return null;
        }
        // A hole is a page tmpfs would have to allocate on a store through the mapping: SIGBUS when
        // the filesystem is full. Only a file without holes is safe to store into.
        long hole = FirstHole(fd);
        if (hole != size)
        {
            reason = hole < 0 ? $"SEEK_HOLE failed (errno {Syscall.Errno})" : $"sparse (first hole at byte {hole} of {size})";
            return null;
        }
        int protection = PROT_READ | (file.Writable ? PROT_WRITE : 0);
        // MAP_POPULATE fills the page tables now (the pages are in memory already): otherwise the first
        // request to touch each page pays a minor fault, for the first pass over the whole image.
        // The price is paid once per connect: page tables of 2 MiB per GiB, and the time to walk them.
        void* address = mmap(null, (size_t)(ulong)size, protection, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (address == MAP_FAILED)
        {
            reason = $"mmap failed (errno {Syscall.Errno})";
            return null;
        }
        // Its own fd for the size checks: the image's may be closed while a queue still holds a reference.
        int own = dup(fd);
        if (own < 0)
        {
            reason = $"dup failed (errno {Syscall.Errno})";
            _ = munmap(address, (size_t)(ulong)size);
            return null;
        }
        reason = "mapped";
        return new ImageMapping(own, (nint)address, size, file.Path);
    }

    /// <summary>The offset of the file's first hole (<c>SEEK_HOLE</c>): its size when it has none; -1 on error.</summary>
    public static long FirstHole(int fd) => lseek(fd, 0, SEEK_HOLE);

    /// <summary>
    /// Whether the mapping may be used for one ring drain: the file still has exactly the size that
    /// was mapped. A different size (shrunk: pages past the end would fault; grown: the new part may
    /// be sparse) gives the mapping up for good.
    /// </summary>
    public bool Revalidate()
    {
        if (!IsUsable)
            return false;
        stat st;
        if (fstat(_fd, &st) != 0 || st.st_size != Length)
        {
            Disable();
            return false;
        }
        return true;
    }

    /// <summary>Gives the mapping up for good: every later request goes through the file's fd.</summary>
    public void Disable() => Volatile.Write(ref _disabled, 1);

    /// <summary>
    /// Zeroes [offset, offset + length) through the mapping: a discard that keeps every page
    /// allocated, so the mapping never gains a hole. The range must lie inside <see cref="Length"/>.
    /// </summary>
    public void Zero(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Length - length)
            throw new ArgumentOutOfRangeException(nameof(length), $"[{offset}, +{length}) is outside the {Length}-byte mapping");
        byte* p = (byte*)Address + offset;
        while (length > 0)
        {
            int chunk = (int)Math.Min(length, 1 << 30);
            new Span<byte>(p, chunk).Clear();
            p += chunk;
            length -= chunk;
        }
    }

    /// <summary>Takes a reference for a user of the mapping (a queue); false if it is already unmapped.</summary>
    public bool AddReference()
    {
        while (true)
        {
            int current = Volatile.Read(ref _references);
            if (current == 0)
                return false;
            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current)
                return true;
        }
    }

    /// <summary>Drops a reference; the last one unmaps.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _references) != 0)
            return;
        _ = munmap((void*)Address, (size_t)(ulong)Length);
        Syscall.Close(_fd);
    }
}
