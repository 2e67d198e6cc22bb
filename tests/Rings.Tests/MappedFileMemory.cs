using System.IO.MemoryMappedFiles;
using XenBackends.Native;

namespace XenBackends.Rings.Tests;

/// <summary>
/// A file in /dev/shm mapped shared, so a C process mapping the same file sees the same ring: the
/// closest a test gets to a grant mapping shared with another domain.
/// </summary>
internal sealed unsafe class MappedFileMemory : SharedMemory
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;

    private MappedFileMemory(string path, MemoryMappedFile file, MemoryMappedViewAccessor view, nint address, int length)
        : base(address, length)
    {
        Path = path;
        _file = file;
        _view = view;
    }

    public string Path { get; }

    public static MappedFileMemory Create(int pages)
    {
        int length = pages * SharedRing.PageSize;
        string path = $"/dev/shm/xb-rings-test-{Guid.NewGuid():N}";
        File.WriteAllBytes(path, new byte[length]);
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, length, MemoryMappedFileAccess.ReadWrite);
        var view = file.CreateViewAccessor(0, length, MemoryMappedFileAccess.ReadWrite);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        return new MappedFileMemory(path, file, view, (nint)(p + view.PointerOffset), length);
    }

    protected override void Release()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
        File.Delete(Path);
    }
}
