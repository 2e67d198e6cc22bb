namespace XenBackends.Native.Xen;

/// <summary>
/// The libxengnttab calls <see cref="XenGrantMapper"/> makes, one method per C function, each
/// handing back the errno it left. The seam exists so the mapper's ownership and error rules can be
/// tested on a machine without Xen; <see cref="LibXenGnttab"/> is the only production implementation.
/// </summary>
internal interface IXenGnttab
{
    /// <summary><c>xengnttab_open(NULL, 0)</c>: the handle, or 0 with <paramref name="errno"/>.</summary>
    nint Open(out int errno);

    int Close(nint xgt);

    int SetMaxGrants(nint xgt, uint count, out int errno);

    /// <summary><c>xengnttab_map_domain_grant_refs</c>: the address, or 0 with <paramref name="errno"/>.</summary>
    nint MapDomainGrantRefs(nint xgt, uint domid, ReadOnlySpan<uint> refs, int prot, out int errno);

    /// <summary><c>xengnttab_map_grant_refs</c> (one domid per ref): the address, or 0 with <paramref name="errno"/>.</summary>
    nint MapGrantRefs(nint xgt, ReadOnlySpan<uint> domids, ReadOnlySpan<uint> refs, int prot, out int errno);

    int Unmap(nint xgt, nint address, uint count, out int errno);

    int GrantCopy(nint xgt, Span<GrantCopySegment> segments, out int errno);
}
