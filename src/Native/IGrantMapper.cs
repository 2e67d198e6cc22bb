namespace XenBackends.Native;

/// <summary>
/// Access to pages a foreign domain granted us: the real one is libxengnttab over /dev/xen/gntdev,
/// the simulated one maps a memfd-backed guest's pages. One instance per worker process (gntdev
/// handles must not cross fork).
/// </summary>
public interface IGrantMapper : IDisposable
{
    /// <summary>
    /// Maps <paramref name="refs"/> of <paramref name="domid"/> into one virtually contiguous region
    /// (<c>xengnttab_map_domain_grant_refs</c>); all or nothing. Throws <see cref="GrantException"/>
    /// when any ref cannot be mapped (bad ref, wrong domain, read-only grant mapped writable).
    /// Disposing the result unmaps it.
    /// </summary>
    SharedMemory Map(ushort domid, ReadOnlySpan<uint> refs, bool writable);

    /// <summary>
    /// <see cref="Map"/> for a per-request data path: the same mapping and the same errors, handed
    /// back as a value so nothing is allocated. The caller owns it until <see cref="UnmapPages"/>.
    /// </summary>
    GrantPages MapPages(ushort domid, ReadOnlySpan<uint> refs, bool writable);

    /// <summary>Unmaps what <see cref="MapPages"/> returned (once); a default value is ignored.</summary>
    void UnmapPages(in GrantPages pages);

    /// <summary>
    /// Performs every segment (<c>xengnttab_grant_copy</c>) and writes each one's
    /// <see cref="GrantCopySegment.Status"/>; a failing segment never stops the others. Throws only
    /// when the whole call fails (the device is gone), never for a per-segment error.
    /// </summary>
    void Copy(Span<GrantCopySegment> segments);
}
