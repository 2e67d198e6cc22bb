using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>
/// A small file mapped <c>MAP_SHARED</c> for state that must outlive the process but not the host
/// (on tmpfs: /run). Stores into a shared file mapping land in the page cache at once, so they
/// survive a SIGKILL between any two instructions; no msync is needed for that.
/// </summary>
public static unsafe class MappedFile
{
    /// <summary>
    /// Maps <paramref name="path"/> (created with mode 0600 if missing, directories included). A file
    /// of another length is truncated to zero first: its contents belong to another shape of state.
    /// </summary>
    public static MappedMemory Open(string path, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (Path.GetDirectoryName(path) is { Length: > 0 } directory)
            Directory.CreateDirectory(directory);
        byte[] cpath = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        int fd;
        fixed (byte* p = cpath)
            fd = LibC.open(p, LibC.O_RDWR | LibC.O_CREAT | LibC.O_CLOEXEC, 0x180 /* 0600 */);
        if (fd < 0)
            throw LinuxCallException.FromErrno($"open({path})");
        using var handle = new SafeFd(fd);
        stat st;
        if (LibC.fstat(fd, &st) != 0)
            throw LinuxCallException.FromErrno($"fstat({path})");
        if (st.st_size != length && (LibC.ftruncate(fd, 0) != 0 || LibC.ftruncate(fd, length) != 0))
            throw LinuxCallException.FromErrno($"ftruncate({path})");
        void* map = LibC.mmap(null, length, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED, fd, 0);
        if (map == LibC.MAP_FAILED)
            throw LinuxCallException.FromErrno($"mmap({path})");
        // The mapping holds the file's pages; the descriptor can go.
        return new MappedMemory((nint)map, length);
    }
}
