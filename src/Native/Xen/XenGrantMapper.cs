using Tmds.Linux;

namespace XenBackends.Native.Xen;

/// <summary>
/// <see cref="IGrantMapper"/> on real Xen: libxengnttab over /dev/xen/gntdev. Open one per worker
/// process and never use it across fork.
/// </summary>
/// <remarks>
/// Ownership rule: every mapping returned by <see cref="Map(ushort, ReadOnlySpan{uint}, bool)"/> keeps
/// the gntdev handle open until it is disposed. Disposing the mapper stops new maps and copies at once
/// but leaves existing mappings usable; the handle is closed by whichever of the mapper and its last
/// mapping is disposed last. A leaked mapping therefore pins the handle (and the guest's pages) until
/// the process exits, which is why callers must dispose mappings when the device disconnects.
/// </remarks>
public sealed class XenGrantMapper : IGrantMapper
{
    /// <summary>Grants are 4 KiB pages whatever the dom0 kernel's page size (XC_PAGE_SIZE).</summary>
    public const int PageSize = 4096;

    /// <summary>
    /// Enough for several devices with the largest rings a frontend negotiates (a 16-page multi-page
    /// blkif ring is 32 requests of 11 segments; a netif queue pair is 2 ring pages plus 256 slots
    /// each way). Kernels since 4.x ignore the request (ENOTTY) and apply their own gntdev limit.
    /// </summary>
    public const uint DefaultMaxGrants = 4096;

    /// <summary>Largest single mapping: its byte length must fit the int of <see cref="SharedMemory.Length"/>.</summary>
    public const int MaxPagesPerMapping = int.MaxValue / PageSize;

    private readonly GnttabHandle _handle;
    private int _disposed;

    private XenGrantMapper(GnttabHandle handle, uint maxGrants)
    {
        _handle = handle;
        MaxGrants = maxGrants;
    }

    /// <summary>The grant count requested from gntdev at open.</summary>
    public uint MaxGrants { get; }

    // Not _handle.IsClosed: a SafeHandle only counts as closed once its last reference (mapping) is gone.
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// Opens /dev/xen/gntdev through libxengnttab. Throws <see cref="XenUnavailableException"/> when
    /// the device or the library is missing, <see cref="XenNativeException"/> when opening fails.
    /// </summary>
    public static XenGrantMapper Open(uint maxGrants = DefaultMaxGrants) =>
        Open(maxGrants, XenDevicePaths.Gntdev, LibXenGnttab.Instance);

    /// <param name="devicePath">The node checked before opening; the library opens its own compiled-in path.</param>
    internal static XenGrantMapper Open(uint maxGrants, string devicePath, IXenGnttab library)
    {
        ArgumentOutOfRangeException.ThrowIfZero(maxGrants);
        XenDeviceNode.RequirePresent(devicePath, "xen-gntdev");

        nint xgt;
        int errno;
        try
        {
            xgt = library.Open(out errno);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw XenLibrary.Gnttab.Unavailable(e);
        }
        if (xgt == 0)
            throw XenErrno.OpenFailed("xengnttab_open", devicePath, errno);

        var handle = new GnttabHandle(library, xgt);
        // Right after open, as the header asks; the library itself ignores ENOTTY and so do we.
        if (library.SetMaxGrants(xgt, maxGrants, out errno) != 0 && errno != LibC.ENOTTY)
        {
            handle.Dispose();
            throw XenErrno.CallFailed("xengnttab_set_max_grants", errno, $"asking gntdev for {maxGrants} grants");
        }
        return new XenGrantMapper(handle, maxGrants);
    }

    public SharedMemory Map(ushort domid, ReadOnlySpan<uint> refs, bool writable)
    {
        CheckPageCount(refs.Length, nameof(refs));
        nint xgt = AddMappingReference();
        nint address = 0;
        try
        {
            address = _handle.Library.MapDomainGrantRefs(xgt, domid, refs, Protection(writable), out int errno);
            if (address == 0)
                throw XenErrno.GrantFailed("xengnttab_map_domain_grant_refs", errno,
                    $"mapping {refs.Length} grant(s) of domain {domid} {Access(writable)}");
            return new GrantMapping(_handle, address, (uint)refs.Length);
        }
        finally
        {
            if (address == 0)
                _handle.DangerousRelease();
        }
    }

    /// <summary>
    /// As <see cref="Map(ushort, ReadOnlySpan{uint}, bool)"/>, including the ownership rule: the pages
    /// hold a reference on the gntdev handle until <see cref="UnmapPages"/>.
    /// </summary>
    public GrantPages MapPages(ushort domid, ReadOnlySpan<uint> refs, bool writable)
    {
        CheckPageCount(refs.Length, nameof(refs));
        nint xgt = AddMappingReference();
        nint address = _handle.Library.MapDomainGrantRefs(xgt, domid, refs, Protection(writable), out int errno);
        if (address == 0)
        {
            _handle.DangerousRelease();
            throw XenErrno.GrantFailed("xengnttab_map_domain_grant_refs", errno,
                $"mapping {refs.Length} grant(s) of domain {domid} {Access(writable)}");
        }
        return new GrantPages(address, refs.Length, 0);
    }

    public void UnmapPages(in GrantPages pages)
    {
        if (!pages.IsMapped)
            return;
        try
        {
            // xengnttab_unmap needs the very count that was mapped.
            if (_handle.Library.Unmap(_handle.DangerousGetHandle(), pages.Address, (uint)pages.PageCount, out int errno) != 0)
                throw XenErrno.GrantFailed("xengnttab_unmap", errno,
                    $"unmapping {pages.PageCount} grant page(s) at 0x{pages.Address:x}");
        }
        finally
        {
            _handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Maps refs granted by different domains (<c>xengnttab_map_grant_refs</c>) into one contiguous
    /// region; <paramref name="domids"/>[i] granted <paramref name="refs"/>[i]. All or nothing.
    /// </summary>
    public SharedMemory Map(ReadOnlySpan<ushort> domids, ReadOnlySpan<uint> refs, bool writable)
    {
        CheckPageCount(refs.Length, nameof(refs));
        if (domids.Length != refs.Length)
            throw new ArgumentException($"{domids.Length} domids for {refs.Length} refs: one domid per ref", nameof(domids));
        // The C call takes uint32_t domids.
        uint[] wideDomids = new uint[domids.Length];
        for (int i = 0; i < domids.Length; i++)
            wideDomids[i] = domids[i];

        nint xgt = AddMappingReference();
        nint address = 0;
        try
        {
            address = _handle.Library.MapGrantRefs(xgt, wideDomids, refs, Protection(writable), out int errno);
            if (address == 0)
                throw XenErrno.GrantFailed("xengnttab_map_grant_refs", errno,
                    $"mapping {refs.Length} grant(s) of several domains {Access(writable)}");
            return new GrantMapping(_handle, address, (uint)refs.Length);
        }
        finally
        {
            if (address == 0)
                _handle.DangerousRelease();
        }
    }

    public void Copy(Span<GrantCopySegment> segments)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (segments.IsEmpty)
            return;
        int rc, errno;
        using (var lease = new HandleLease(_handle, this))
        {
            try
            {
                rc = _handle.Library.GrantCopy(lease.Pointer, segments, out errno);
            }
            catch (EntryPointNotFoundException e)
            {
                // grant_copy arrived in VERS_1.1 (Xen 4.8); the rest of the library is older.
                throw XenLibrary.Gnttab.Unavailable(e);
            }
        }
        if (rc != 0)
            throw XenErrno.GrantFailed("xengnttab_grant_copy", errno, $"copying {segments.Length} segment(s)");
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _handle.Dispose();
    }

    /// <summary>Adds the reference a new mapping will own; the caller releases it if the map fails.</summary>
    private nint AddMappingReference()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            throw new ObjectDisposedException(nameof(XenGrantMapper));
        }
        return _handle.DangerousGetHandle();
    }

    private static void CheckPageCount(int count, string paramName)
    {
        if (count == 0)
            throw new ArgumentException("at least one grant reference is needed", paramName);
        if (count > MaxPagesPerMapping)
            throw new ArgumentOutOfRangeException(paramName, count, $"at most {MaxPagesPerMapping} grants fit one mapping");
    }

    private static int Protection(bool writable) => LibC.PROT_READ | (writable ? LibC.PROT_WRITE : 0);

    private static string Access(bool writable) => writable ? "read-write" : "read-only";
}
