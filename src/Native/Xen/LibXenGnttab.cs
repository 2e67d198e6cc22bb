using System.Runtime.InteropServices;

namespace XenBackends.Native.Xen;

/// <summary>libxengnttab.so.1 (xengnttab.h), bound with source-generated P/Invoke.</summary>
internal sealed unsafe partial class LibXenGnttab : IXenGnttab
{
    public const string Soname = "libxengnttab.so.1";

    public static LibXenGnttab Instance { get; } = new();

    /// <summary>Every symbol bound below, for the startup probe and the library test.</summary>
    public static IReadOnlyList<string> Exports { get; } =
    [
        nameof(xengnttab_open), nameof(xengnttab_close), nameof(xengnttab_set_max_grants),
        nameof(xengnttab_map_domain_grant_refs), nameof(xengnttab_map_grant_refs),
        nameof(xengnttab_unmap), nameof(xengnttab_grant_copy),
    ];

    private LibXenGnttab() { }

    public nint Open(out int errno)
    {
        // NULL logger: the library then logs nothing itself and errno carries the failure to us.
        nint xgt = xengnttab_open(0, 0);
        errno = xgt == 0 ? Marshal.GetLastPInvokeError() : 0;
        return xgt;
    }

    public int Close(nint xgt) => xengnttab_close(xgt);

    public int SetMaxGrants(nint xgt, uint count, out int errno) =>
        Result(xengnttab_set_max_grants(xgt, count), out errno);

    public nint MapDomainGrantRefs(nint xgt, uint domid, ReadOnlySpan<uint> refs, int prot, out int errno)
    {
        fixed (uint* r = refs)
        {
            nint address = (nint)xengnttab_map_domain_grant_refs(xgt, (uint)refs.Length, domid, r, prot);
            errno = address == 0 ? Marshal.GetLastPInvokeError() : 0;
            return address;
        }
    }

    public nint MapGrantRefs(nint xgt, ReadOnlySpan<uint> domids, ReadOnlySpan<uint> refs, int prot, out int errno)
    {
        fixed (uint* d = domids)
        fixed (uint* r = refs)
        {
            nint address = (nint)xengnttab_map_grant_refs(xgt, (uint)refs.Length, d, r, prot);
            errno = address == 0 ? Marshal.GetLastPInvokeError() : 0;
            return address;
        }
    }

    public int Unmap(nint xgt, nint address, uint count, out int errno) =>
        Result(xengnttab_unmap(xgt, (void*)address, count), out errno);

    public int GrantCopy(nint xgt, Span<GrantCopySegment> segments, out int errno)
    {
        fixed (GrantCopySegment* s = segments)
            return Result(xengnttab_grant_copy(xgt, (uint)segments.Length, s), out errno);
    }

    private static int Result(int rc, out int errno)
    {
        errno = rc < 0 ? Marshal.GetLastPInvokeError() : 0;
        return rc;
    }

    [LibraryImport(Soname, SetLastError = true)]
    private static partial nint xengnttab_open(nint logger, uint open_flags);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xengnttab_close(nint xgt);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xengnttab_set_max_grants(nint xgt, uint nr_grants);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial void* xengnttab_map_domain_grant_refs(nint xgt, uint count, uint domid, uint* refs, int prot);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial void* xengnttab_map_grant_refs(nint xgt, uint count, uint* domids, uint* refs, int prot);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xengnttab_unmap(nint xgt, void* start_address, uint count);

    [LibraryImport(Soname, SetLastError = true)]
    private static partial int xengnttab_grant_copy(nint xgt, uint count, GrantCopySegment* segs);
}
