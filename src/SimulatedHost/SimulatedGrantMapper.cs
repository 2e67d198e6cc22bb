using XenBackends.Native;
using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// <see cref="IGrantMapper"/> for a backend domain without Xen: validates every ref as Xen's grant table
/// code does (same GNTST_* results) and maps the guest's memfd pages directly, so mappings are real,
/// zero-copy and virtually contiguous like <c>xengnttab_map_domain_grant_refs</c>.
/// </summary>
/// <remarks>
/// Statuses follow xen/common/grant_table.c: a ref beyond the table is GNTST_bad_gntref; an unknown
/// domain GNTST_bad_domain; an entry that is not GTF_permit_access, is for another domid, or is
/// GTF_readonly while write access is asked for (map writable, or copy destination) is
/// GNTST_general_error (Xen's _set_status_v1); a frame outside guest RAM GNTST_bad_page; a foreign
/// offset + length beyond the page GNTST_bad_copy_arg. Where the real gntdev would fail the whole ioctl
/// (a local-to-local segment, a null local address) this reports the segment instead, since
/// <see cref="IGrantMapper.Copy"/> promises per-segment errors.
/// </remarks>
public sealed class SimulatedGrantMapper : IGrantMapper
{
    private readonly IForeignDomains _domains;
    private readonly IDisposable? _owner;
    private bool _disposed;
    // MapPages bookkeeping, shared by every queue thread that uses this mapper.
    private readonly Lock _recordLock = new();
    private PageRecord[] _records = new PageRecord[16];
    private int[] _freeRecords = new int[16];
    private int _recordCount, _freeRecordCount, _recordCapacity;

    internal SimulatedGrantMapper(ushort backendDomid, IForeignDomains domains, IDisposable? owner = null)
    {
        BackendDomid = backendDomid;
        _domains = domains;
        _owner = owner;
    }

    /// <summary>The domain the mappings are made for: grant entries must name it.</summary>
    public ushort BackendDomid { get; }

    public SharedMemory Map(ushort domid, ReadOnlySpan<uint> refs, bool writable)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (refs.IsEmpty)
            throw new ArgumentException("no grant refs to map", nameof(refs));
        var domain = _domains.Find(domid)
            ?? throw new GrantException("map grant refs", Errno.EINVAL, $"domain {domid} does not exist", GrantStatus.BadDomain);
        var pinned = new uint[refs.Length];
        var frames = new long[refs.Length];
        int done = 0;
        try
        {
            for (; done < refs.Length; done++)
            {
                short status = domain.Grants.Pin(refs[done], BackendDomid, writable, domain.Memory.PageCount, out uint frame);
                if (status != GrantStatus.Okay)
                    throw new GrantException("map grant refs", Errno.EINVAL,
                        $"d{domid} ref {refs[done]} (#{done} of {refs.Length}) cannot be mapped {(writable ? "writable" : "read-only")} by d{BackendDomid}: {StatusName(status)}",
                        status);
                pinned[done] = refs[done];
                frames[done] = frame;
            }
            var pages = domain.Memory.MapPages(frames, writable);
            return new GrantMapping(pages, domain.Grants, pinned, writable);
        }
        catch
        {
            // All or nothing: a partial failure leaves no pin behind.
            for (int i = 0; i < done; i++)
                domain.Grants.Unpin(pinned[i], writable);
            throw;
        }
    }

    /// <summary>
    /// As <see cref="Map"/>, without allocating once warm: the pinned refs are kept in a record from
    /// a pool (grown on demand, never shrunk) that <see cref="GrantPages.Token"/> names. It allocates
    /// only while the largest mapping or the number of mappings held at once is still growing.
    /// </summary>
    public GrantPages MapPages(ushort domid, ReadOnlySpan<uint> refs, bool writable)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (refs.IsEmpty)
            throw new ArgumentException("no grant refs to map", nameof(refs));
        var domain = _domains.Find(domid)
            ?? throw new GrantException("map grant refs", Errno.EINVAL, $"domain {domid} does not exist", GrantStatus.BadDomain);
        int token = RentRecord(refs.Length, out PageRecord record);
        int done = 0;
        try
        {
            for (; done < refs.Length; done++)
            {
                short status = domain.Grants.Pin(refs[done], BackendDomid, writable, domain.Memory.PageCount, out uint frame);
                if (status != GrantStatus.Okay)
                    throw new GrantException("map grant refs", Errno.EINVAL,
                        $"d{domid} ref {refs[done]} (#{done} of {refs.Length}) cannot be mapped {(writable ? "writable" : "read-only")} by d{BackendDomid}: {StatusName(status)}",
                        status);
                record.Refs[done] = refs[done];
                record.Frames[done] = frame;
            }
            nint address = domain.Memory.MapPagesUnowned(record.Frames.AsSpan(0, refs.Length), writable);
            record.Domain = domain;
            record.Count = refs.Length;
            record.Writable = writable;
            record.Address = address;
            return new GrantPages(address, refs.Length, token);
        }
        catch
        {
            // All or nothing: a partial failure leaves no pin behind.
            for (int i = 0; i < done; i++)
                domain.Grants.Unpin(record.Refs[i], writable);
            ReturnRecord(token);
            throw;
        }
    }

    public void UnmapPages(in GrantPages pages)
    {
        if (!pages.IsMapped)
            return;
        PageRecord record;
        lock (_recordLock)
        {
            if ((uint)pages.Token >= (uint)_recordCount || _records[pages.Token] is not { Domain: not null } r || r.Address != pages.Address)
                throw new ArgumentException($"0x{pages.Address:x} is not a mapping this mapper made", nameof(pages));
            record = r;
        }
        // Unmap first, then unpin: the guest can never end access while we can still touch the pages.
        MemFd.Unmap(pages.Address, pages.Length);
        for (int i = 0; i < record.Count; i++)
            record.Domain!.Grants.Unpin(record.Refs[i], record.Writable);
        ReturnRecord(pages.Token);
    }

    private int RentRecord(int pages, out PageRecord record)
    {
        lock (_recordLock)
        {
            int token;
            if (_freeRecordCount > 0)
            {
                token = _freeRecords[--_freeRecordCount];
            }
            else
            {
                if (_recordCount == _records.Length)
                {
                    Array.Resize(ref _records, _records.Length * 2);
                    Array.Resize(ref _freeRecords, _records.Length);
                }
                token = _recordCount++;
                _records[token] = new PageRecord();
            }
            record = _records[token];
            _recordCapacity = Math.Max(_recordCapacity, pages);
            if (record.Refs.Length < pages)
                record.Resize(_recordCapacity);
            return token;
        }
    }

    private void ReturnRecord(int token)
    {
        lock (_recordLock)
        {
            PageRecord record = _records[token];
            record.Domain = null;
            record.Address = 0;
            record.Count = 0;
            // Every record grows to the largest mapping seen, so once the largest request and the
            // deepest queue have come by, renting never allocates again, whatever sizes follow.
            if (record.Refs.Length < _recordCapacity)
                record.Resize(_recordCapacity);
            _freeRecords[_freeRecordCount++] = token;
        }
    }

    /// <summary>What one <see cref="GrantPages"/> pinned, so that unmapping can unpin it.</summary>
    private sealed class PageRecord
    {
        public uint[] Refs = [];
        public long[] Frames = [];
        public int Count;
        public bool Writable;
        public nint Address;
        public ForeignDomain? Domain;

        public void Resize(int pages)
        {
            Refs = new uint[pages];
            Frames = new long[pages];
        }
    }

    public void Copy(Span<GrantCopySegment> segments)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (int i = 0; i < segments.Length; i++)
            segments[i].Status = CopyOne(ref segments[i]);
    }

    public void Dispose()
    {
        _disposed = true;
        _owner?.Dispose();
    }

    private short CopyOne(ref GrantCopySegment s)
    {
        const ushort known = GrantCopyFlags.SourceGref | GrantCopyFlags.DestGref;
        bool sourceGref = (s.Flags & GrantCopyFlags.SourceGref) != 0;
        bool destGref = (s.Flags & GrantCopyFlags.DestGref) != 0;
        if ((s.Flags & ~known) != 0 || (!sourceGref && !destGref))
            return GrantStatus.BadCopyArg;
        if ((sourceGref && s.SourceOffset + s.Length > MemFd.PageSize) || (destGref && s.DestOffset + s.Length > MemFd.PageSize))
            return GrantStatus.BadCopyArg;
        if ((!sourceGref && s.SourceVirt == 0) || (!destGref && s.DestVirt == 0))
            return GrantStatus.BadVirtAddr;

        ForeignDomain? sourceDomain = null, destDomain = null;
        if (sourceGref && (sourceDomain = _domains.Find(s.SourceDomid)) is null)
            return GrantStatus.BadDomain;
        if (destGref && (destDomain = _domains.Find(s.DestDomid)) is null)
            return GrantStatus.BadDomain;

        uint sourceFrame = 0, destFrame = 0;
        if (sourceDomain is not null)
        {
            short status = sourceDomain.Grants.Pin(s.SourceRef, BackendDomid, writable: false, sourceDomain.Memory.PageCount, out sourceFrame);
            if (status != GrantStatus.Okay)
                return status;
        }
        try
        {
            if (destDomain is not null)
            {
                short status = destDomain.Grants.Pin(s.DestRef, BackendDomid, writable: true, destDomain.Memory.PageCount, out destFrame);
                if (status != GrantStatus.Okay)
                    return status;
            }
            try
            {
                Span<byte> source = sourceDomain is not null
                    ? sourceDomain.Frame(sourceFrame).Slice(s.SourceOffset, s.Length)
                    : UnmanagedSpan.FromAddress(s.SourceVirt, s.Length);
                Span<byte> dest = destDomain is not null
                    ? destDomain.Frame(destFrame).Slice(s.DestOffset, s.Length)
                    : UnmanagedSpan.FromAddress(s.DestVirt, s.Length);
                source.CopyTo(dest);
                return GrantStatus.Okay;
            }
            finally
            {
                destDomain?.Grants.Unpin(s.DestRef, writable: true);
            }
        }
        finally
        {
            sourceDomain?.Grants.Unpin(s.SourceRef, writable: false);
        }
    }

    internal static string StatusName(short status) => status switch
    {
        GrantStatus.Okay => "GNTST_okay",
        GrantStatus.GeneralError => "GNTST_general_error",
        GrantStatus.BadDomain => "GNTST_bad_domain",
        GrantStatus.BadGntref => "GNTST_bad_gntref",
        GrantStatus.BadPage => "GNTST_bad_page",
        GrantStatus.BadCopyArg => "GNTST_bad_copy_arg",
        GrantStatus.PermissionDenied => "GNTST_permission_denied",
        _ => $"GNTST {status}",
    };
}
