using XenBackends.Native.Xen;

namespace XenBackends.Native.Tests.Xen;

/// <summary>
/// Stands in for libxengnttab so the mapper's own rules (ownership, errno mapping, one call per
/// copy) can be checked without /dev/xen. Addresses it hands out are real native memory, so a test
/// may write through a mapping's Span.
/// </summary>
internal sealed unsafe class FakeGnttab : IXenGnttab, IDisposable
{
    public const nint Handle = 0x5eed;

    public int OpenErrno { get; set; }
    public Exception? OpenThrows { get; set; }
    public int SetMaxGrantsErrno { get; set; }
    public int MapErrno { get; set; }
    public int UnmapErrno { get; set; }
    public int CopyErrno { get; set; }
    /// <summary>Status the "hypervisor" writes into every copied segment.</summary>
    public short CopyStatus { get; set; } = GrantStatus.Okay;

    public uint? MaxGrantsRequested { get; private set; }
    public int CloseCalls { get; private set; }
    public List<(uint Domid, uint[] Refs, int Prot)> DomainMaps { get; } = [];
    public List<(uint[] Domids, uint[] Refs, int Prot)> MixedMaps { get; } = [];
    public List<(nint Address, uint Count)> Unmaps { get; } = [];
    public List<int> CopyCalls { get; } = [];
    private readonly List<nint> _allocations = [];

    public nint Open(out int errno)
    {
        if (OpenThrows is not null)
            throw OpenThrows;
        errno = OpenErrno;
        return OpenErrno == 0 ? Handle : 0;
    }

    public int Close(nint xgt)
    {
        Assert.Equal(Handle, xgt);
        CloseCalls++;
        return 0;
    }

    public int SetMaxGrants(nint xgt, uint count, out int errno)
    {
        MaxGrantsRequested = count;
        errno = SetMaxGrantsErrno;
        return errno == 0 ? 0 : -1;
    }

    public nint MapDomainGrantRefs(nint xgt, uint domid, ReadOnlySpan<uint> refs, int prot, out int errno)
    {
        Assert.Equal(Handle, xgt);
        DomainMaps.Add((domid, refs.ToArray(), prot));
        return Allocate(refs.Length, out errno);
    }

    public nint MapGrantRefs(nint xgt, ReadOnlySpan<uint> domids, ReadOnlySpan<uint> refs, int prot, out int errno)
    {
        Assert.Equal(Handle, xgt);
        MixedMaps.Add((domids.ToArray(), refs.ToArray(), prot));
        return Allocate(refs.Length, out errno);
    }

    public int Unmap(nint xgt, nint address, uint count, out int errno)
    {
        Assert.Equal(Handle, xgt);
        Assert.Equal(0, CloseCalls); // unmapping through a closed handle would be a use-after-free
        Unmaps.Add((address, count));
        errno = UnmapErrno;
        return errno == 0 ? 0 : -1;
    }

    public int GrantCopy(nint xgt, Span<GrantCopySegment> segments, out int errno)
    {
        Assert.Equal(Handle, xgt);
        CopyCalls.Add(segments.Length);
        errno = CopyErrno;
        if (errno != 0)
            return -1;
        foreach (ref var segment in segments)
            segment.Status = CopyStatus;
        return 0;
    }

    public void Dispose()
    {
        foreach (nint p in _allocations)
            System.Runtime.InteropServices.NativeMemory.Free((void*)p);
    }

    private nint Allocate(int pages, out int errno)
    {
        errno = MapErrno;
        if (errno != 0)
            return 0;
        nint p = (nint)System.Runtime.InteropServices.NativeMemory.AllocZeroed((nuint)(pages * XenGrantMapper.PageSize));
        _allocations.Add(p);
        return p;
    }
}
