using System.Runtime.InteropServices;
using XenBackends.Native;

namespace XenBackends.Rings;

/// <summary>
/// Page-aligned, zeroed process memory standing in for a grant mapping: for in-process rings in
/// tests, the simulated guest and benchmarks. Must be disposed (there is no finalizer, because a
/// ring may still point into it).
/// </summary>
public sealed unsafe class UnmanagedMemory : SharedMemory
{
    private UnmanagedMemory(nint address, int length) : base(address, length)
    {
    }

    public static UnmanagedMemory AllocatePages(int pages)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(pages);
        int length = checked(pages * SharedRing.PageSize);
        void* p = NativeMemory.AlignedAlloc((nuint)length, SharedRing.PageSize);
        NativeMemory.Clear(p, (nuint)length);
        return new UnmanagedMemory((nint)p, length);
    }

    protected override void Release() => NativeMemory.AlignedFree((void*)Address);
}
