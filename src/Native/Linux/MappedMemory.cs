using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>An <c>mmap</c>ed range (of a memfd, or a reservation filled page by page); disposing unmaps it.</summary>
public sealed unsafe class MappedMemory : SharedMemory
{
    internal MappedMemory(nint address, int length) : base(address, length) { }

    protected override void Release()
    {
        // munmap of a range we mapped ourselves only fails on a bug; there is nothing useful to do then.
        _ = LibC.munmap((void*)Address, Length);
    }
}
