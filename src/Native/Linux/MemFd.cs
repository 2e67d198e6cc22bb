using System.Text;
using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>
/// An anonymous shared-memory file (<c>memfd_create</c>): the simulated guest RAM and grant tables live
/// in these so they can be mapped several times, and handed to another process with SCM_RIGHTS.
/// Mappings are always <c>MAP_SHARED</c> and in whole 4 KiB pages (the Xen page size).
/// </summary>
public sealed unsafe class MemFd : IDisposable
{
    public const int PageSize = 4096;

    private MemFd(SafeFd handle, long size)
    {
        Handle = handle;
        Size = size;
    }

    public SafeFd Handle { get; }

    /// <summary>Size in bytes, always a whole number of pages.</summary>
    public long Size { get; }

    public long PageCount => Size / PageSize;

    /// <summary>
    /// Creates a zero-filled memfd of <paramref name="pageCount"/> pages. With <paramref name="sealSize"/>
    /// the size can never change again, so a process that received the fd cannot be hit by SIGBUS
    /// because the owner shrank the file under its mappings.
    /// </summary>
    public static MemFd Create(string name, long pageCount, bool sealSize = true)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pageCount, int.MaxValue / PageSize);
        EnsureXenPageSize();
        byte[] cname = Encoding.UTF8.GetBytes(name + "\0");
        int fd;
        fixed (byte* p = cname)
            fd = LibC.memfd_create(p, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING);
        if (fd < 0)
            throw LinuxCallException.FromErrno("memfd_create");
        var handle = new SafeFd(fd);
        try
        {
            long size = pageCount * PageSize;
            if (LibC.ftruncate(fd, size) != 0)
                throw LinuxCallException.FromErrno("ftruncate");
            if (sealSize && LibC.fcntl(fd, LibC.F_ADD_SEALS, LibC.F_SEAL_SHRINK | LibC.F_SEAL_GROW | LibC.F_SEAL_SEAL) != 0)
                throw LinuxCallException.FromErrno("fcntl(F_ADD_SEALS)");
            return new MemFd(handle, size);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Wraps a memfd received from elsewhere (taking ownership). Its size must be a whole number of pages;
    /// with <paramref name="requireSealedSize"/> it must also be sealed against shrinking, so mapping it is safe.
    /// </summary>
    public static MemFd Adopt(SafeFd handle, bool requireSealedSize = true)
    {
        ArgumentNullException.ThrowIfNull(handle);
        EnsureXenPageSize();
        int fd = handle.Fd;
        long size = LibC.lseek(fd, 0, LibC.SEEK_END);
        if (size < 0)
            throw LinuxCallException.FromErrno("lseek");
        if (size == 0 || size % PageSize != 0)
            throw new ArgumentException($"the fd is {size} bytes, not a whole number of {PageSize}-byte pages", nameof(handle));
        if (requireSealedSize)
        {
            int seals = LibC.fcntl(fd, LibC.F_GET_SEALS);
            if (seals < 0)
                throw LinuxCallException.FromErrno("fcntl(F_GET_SEALS)");
            if ((seals & LibC.F_SEAL_SHRINK) == 0)
                throw new ArgumentException("the memfd is not sealed against shrinking; mapping it could SIGBUS", nameof(handle));
        }
        return new MemFd(handle, size);
    }

    /// <summary>Maps <paramref name="pageCount"/> pages starting at <paramref name="firstPage"/>.</summary>
    public MappedMemory Map(long firstPage, int pageCount, bool writable)
    {
        CheckRange(firstPage, pageCount);
        int length = pageCount * PageSize;
        void* p = LibC.mmap(null, length, Prot(writable), LibC.MAP_SHARED, Handle.Fd, firstPage * PageSize);
        if (p == LibC.MAP_FAILED)
            throw LinuxCallException.FromErrno("mmap");
        return new MappedMemory((nint)p, length);
    }

    /// <summary>Maps the whole file.</summary>
    public MappedMemory MapAll(bool writable) => Map(0, checked((int)PageCount), writable);

    /// <summary>
    /// Maps the listed pages, in order, into one virtually contiguous range (what
    /// <c>xengnttab_map_domain_grant_refs</c> gives): an address range is reserved with a PROT_NONE
    /// anonymous mapping and each run of consecutive pages is placed into it with MAP_FIXED, so a failure
    /// half way leaves nothing behind and no other mapping can ever be clobbered.
    /// </summary>
    public MappedMemory MapPages(ReadOnlySpan<long> pages, bool writable) =>
        new(MapPagesUnowned(pages, writable), pages.Length * PageSize);

    /// <summary>
    /// <see cref="MapPages"/> without the owning object, for a caller that maps per request and must
    /// not allocate; it unmaps with <see cref="Unmap"/> and the same length.
    /// </summary>
    public nint MapPagesUnowned(ReadOnlySpan<long> pages, bool writable)
    {
        if (pages.IsEmpty)
            throw new ArgumentException("no pages to map", nameof(pages));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pages.Length, int.MaxValue / PageSize, nameof(pages));
        foreach (long page in pages)
            CheckRange(page, 1);
        int length = pages.Length * PageSize;
        void* reserved = LibC.mmap(null, length, LibC.PROT_NONE,
            LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE, -1, 0);
        if (reserved == LibC.MAP_FAILED)
            throw LinuxCallException.FromErrno("mmap(reserve)");
        int fd = Handle.Fd;
        int i = 0;
        while (i < pages.Length)
        {
            int run = 1;
            while (i + run < pages.Length && pages[i + run] == pages[i] + run)
                run++;
            byte* at = (byte*)reserved + (long)i * PageSize;
            void* p = LibC.mmap(at, run * PageSize, Prot(writable), LibC.MAP_SHARED | LibC.MAP_FIXED, fd, pages[i] * PageSize);
            if (p == LibC.MAP_FAILED)
            {
                var error = LinuxCallException.FromErrno("mmap(MAP_FIXED)");
                _ = LibC.munmap(reserved, length);
                throw error;
            }
            i += run;
        }
        return (nint)reserved;
    }

    /// <summary>Unmaps <paramref name="length"/> bytes at <paramref name="address"/> from <see cref="MapPagesUnowned"/>.</summary>
    public static void Unmap(nint address, int length)
    {
        // munmap of a range we mapped ourselves only fails on a bug; there is nothing useful to do then.
        _ = LibC.munmap((void*)address, length);
    }

    public void Dispose() => Handle.Dispose();

    private void CheckRange(long firstPage, int pageCount)
    {
        ObjectDisposedException.ThrowIf(Handle.IsClosed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(firstPage);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageCount, 1);
        if (firstPage > PageCount - pageCount)
            throw new ArgumentOutOfRangeException(nameof(firstPage),
                $"pages {firstPage}..{firstPage + pageCount - 1} are outside the {PageCount}-page memfd");
    }

    private static int Prot(bool writable) => writable ? LibC.PROT_READ | LibC.PROT_WRITE : LibC.PROT_READ;

    private static void EnsureXenPageSize()
    {
        // Grant and ring code assume one Xen page is one Linux page; a 16K/64K-page kernel would break that.
        if (Environment.SystemPageSize != PageSize)
            throw new PlatformNotSupportedException($"the system page size is {Environment.SystemPageSize}, not {PageSize}");
    }
}
