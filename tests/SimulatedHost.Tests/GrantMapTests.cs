using XenBackends.Native;
using XenBackends.Native.Linux;
using static XenBackends.SimulatedHost.GrantTableFlags;

namespace XenBackends.SimulatedHost.Tests;

public sealed class GrantMapTests : IDisposable
{
    private readonly SimulatedXenHost _host = new();
    private readonly SimulatedDomain _guest;
    private readonly IGrantMapper _mapper;

    public GrantMapTests()
    {
        _guest = _host.CreateDomain(5, pageCount: 16);
        _mapper = _host.CreateGrantMapper();
    }

    public void Dispose()
    {
        _mapper.Dispose();
        _host.Dispose();
    }

    [Fact]
    public void Mapped_grant_shows_the_guests_bytes_and_backend_writes_reach_the_guest()
    {
        uint frame = _guest.Memory.AllocatePage();
        _guest.Memory.Page(frame)[10] = 0xAB;
        uint gref = _guest.Grants.GrantAccess(0, frame, readOnly: false);
        using var map = _mapper.Map(5, [gref], writable: true);
        Assert.Equal(0xAB, map.Span[10]);
        map.Span[4095] = 0xCD;
        Assert.Equal(0xCD, _guest.Memory.Page(frame)[4095]);
        _guest.Memory.Page(frame)[11] = 0x11; // and live, not a snapshot
        Assert.Equal(0x11, map.Span[11]);
    }

    [Fact]
    public void Scattered_pages_map_contiguously_in_ref_order()
    {
        uint[] frames = [9, 2, 14, 3];
        var refs = new uint[frames.Length];
        for (int i = 0; i < frames.Length; i++)
        {
            _guest.Memory.Page(frames[i]).Fill((byte)(0x40 + i));
            refs[i] = _guest.Grants.GrantAccess(0, frames[i], readOnly: true);
        }
        using var map = _mapper.Map(5, refs, writable: false);
        Assert.Equal(4 * 4096, map.Length);
        for (int i = 0; i < frames.Length; i++)
            Assert.True(map.Span.Slice(i * 4096, 4096).IndexOfAnyExcept((byte)(0x40 + i)) < 0);
    }

    [Fact]
    public void Mapping_sets_the_in_use_bits_and_unmapping_clears_them()
    {
        uint gref = _guest.Grants.GrantAccess(0, 1, readOnly: false);
        var map = _mapper.Map(5, [gref], writable: true);
        Assert.Equal(GTF_permit_access | GTF_reading | GTF_writing, _guest.Grants.ReadEntry(gref).Flags);
        var readOnlyMap = _mapper.Map(5, [gref], writable: false);
        map.Dispose();
        Assert.Equal(GTF_permit_access | GTF_reading, _guest.Grants.ReadEntry(gref).Flags);
        readOnlyMap.Dispose();
        Assert.Equal(GTF_permit_access, _guest.Grants.ReadEntry(gref).Flags);
    }

    [Fact]
    public void End_access_is_refused_while_mapped_and_allowed_after_unmap()
    {
        uint gref = _guest.Grants.GrantAccess(0, 1, readOnly: true);
        var map = _mapper.Map(5, [gref], writable: false);
        Assert.False(_guest.Grants.EndAccess(gref));
        Assert.Equal(GTF_permit_access | GTF_readonly | GTF_reading, _guest.Grants.ReadEntry(gref).Flags);
        map.Dispose();
        Assert.True(_guest.Grants.EndAccess(gref));
        Assert.Equal(new GrantEntry(0, 0, 1), _guest.Grants.ReadEntry(gref) with { Frame = 1 });
        // a revoked ref cannot be mapped any more
        Assert.Equal(GrantStatus.GeneralError, Assert.Throws<GrantException>(() => _mapper.Map(5, [gref], writable: false)).Status);
    }

    [Fact]
    public void Ref_beyond_the_table_is_bad_gntref()
    {
        var e = Assert.Throws<GrantException>(() => _mapper.Map(5, [(uint)_guest.Grants.EntryCount], writable: false));
        Assert.Equal(GrantStatus.BadGntref, e.Status);
    }

    [Fact]
    public void Unknown_domain_is_bad_domain()
    {
        Assert.Equal(GrantStatus.BadDomain, Assert.Throws<GrantException>(() => _mapper.Map(77, [8], writable: false)).Status);
    }

    [Fact]
    public void Entry_without_permit_access_is_refused_as_xen_does()
    {
        // Allocated nowhere: flags are GTF_invalid.
        Assert.Equal(GrantStatus.GeneralError, Assert.Throws<GrantException>(() => _mapper.Map(5, [100], writable: false)).Status);
        _guest.Grants.WriteRawEntry(101, new GrantEntry(GTF_accept_transfer, 0, 1));
        Assert.Equal(GrantStatus.GeneralError, Assert.Throws<GrantException>(() => _mapper.Map(5, [101], writable: false)).Status);
    }

    [Fact]
    public void Grant_for_another_domid_is_refused()
    {
        uint gref = _guest.Grants.GrantAccess(3, 1, readOnly: false);
        var e = Assert.Throws<GrantException>(() => _mapper.Map(5, [gref], writable: false));
        Assert.Equal(GrantStatus.GeneralError, e.Status);
        Assert.Contains("d0", e.Message);
        using var asDom3 = _host.CreateGrantMapper(3);
        using var ok = asDom3.Map(5, [gref], writable: true);
    }

    [Fact]
    public void Read_only_grant_mapped_writable_is_refused_and_the_page_is_untouched()
    {
        uint frame = _guest.Memory.AllocatePage();
        _guest.Memory.Page(frame).Fill(0x77);
        uint gref = _guest.Grants.GrantAccess(0, frame, readOnly: true);
        var e = Assert.Throws<GrantException>(() => _mapper.Map(5, [gref], writable: true));
        Assert.Equal(GrantStatus.GeneralError, e.Status);
        Assert.True(_guest.Memory.Page(frame).IndexOfAnyExcept((byte)0x77) < 0);
        Assert.Equal(GTF_permit_access | GTF_readonly, _guest.Grants.ReadEntry(gref).Flags);
    }

    [Fact]
    public void Frame_outside_guest_ram_is_bad_page()
    {
        _guest.Grants.WriteRawEntry(50, new GrantEntry(GTF_permit_access, 0, 16));
        Assert.Equal(GrantStatus.BadPage, Assert.Throws<GrantException>(() => _mapper.Map(5, [50], writable: false)).Status);
        Assert.Equal(GTF_permit_access, _guest.Grants.ReadEntry(50).Flags);
    }

    [Fact]
    public void A_failing_ref_in_a_batch_leaves_no_earlier_ref_pinned()
    {
        uint good = _guest.Grants.GrantAccess(0, 1, readOnly: false);
        uint readOnly = _guest.Grants.GrantAccess(0, 2, readOnly: true);
        Assert.Throws<GrantException>(() => _mapper.Map(5, [good, readOnly], writable: true));
        Assert.Equal(GTF_permit_access, _guest.Grants.ReadEntry(good).Flags);
        Assert.True(_guest.Grants.EndAccess(good));
    }

    [Fact]
    public void Empty_ref_list_is_an_argument_error()
    {
        Assert.Throws<ArgumentException>(() => _mapper.Map(5, [], writable: false));
    }

    // ---- MapPages/UnmapPages: the allocation-free form the block data path uses per request

    [Fact]
    public void MapPages_maps_scattered_pages_in_ref_order_pins_them_and_UnmapPages_unpins()
    {
        uint[] frames = [9, 2, 14];
        var refs = new uint[frames.Length];
        for (int i = 0; i < frames.Length; i++)
        {
            _guest.Memory.Page(frames[i]).Fill((byte)(0x60 + i));
            refs[i] = _guest.Grants.GrantAccess(0, frames[i], readOnly: false);
        }
        GrantPages pages = _mapper.MapPages(5, refs, writable: true);
        Assert.Equal(3, pages.PageCount);
        Span<byte> view = UnmanagedSpan.FromAddress(pages.Address, pages.Length);
        for (int i = 0; i < frames.Length; i++)
            Assert.True(view.Slice(i * 4096, 4096).IndexOfAnyExcept((byte)(0x60 + i)) < 0);
        view[4096 + 7] = 0xEE;
        Assert.Equal(0xEE, _guest.Memory.Page(2)[7]);
        Assert.All(refs, r => Assert.Equal(GTF_permit_access | GTF_reading | GTF_writing, _guest.Grants.ReadEntry(r).Flags));
        Assert.False(_guest.Grants.EndAccess(refs[0]));

        _mapper.UnmapPages(pages);
        Assert.All(refs, r => Assert.Equal(GTF_permit_access, _guest.Grants.ReadEntry(r).Flags));
        Assert.True(_guest.Grants.EndAccess(refs[0]));
    }

    [Fact]
    public void MapPages_failing_ref_leaves_no_pin_and_its_record_is_reused()
    {
        uint good = _guest.Grants.GrantAccess(0, 1, readOnly: false);
        uint readOnly = _guest.Grants.GrantAccess(0, 2, readOnly: true);
        var e = Assert.Throws<GrantException>(() => _mapper.MapPages(5, [good, readOnly], writable: true));
        Assert.Equal(GrantStatus.GeneralError, e.Status);
        Assert.Equal(GTF_permit_access, _guest.Grants.ReadEntry(good).Flags);
        // The pool still works after a failure, for more mappings at once than it started with.
        var many = new List<GrantPages>();
        for (int i = 0; i < 40; i++)
            many.Add(_mapper.MapPages(5, [good], writable: false));
        Assert.Equal(40, many.Select(p => p.Token).Distinct().Count());
        foreach (var p in many)
            _mapper.UnmapPages(p);
        Assert.True(_guest.Grants.EndAccess(good));
    }

    [Fact]
    public void UnmapPages_refuses_a_mapping_it_never_made_or_already_unmapped_and_ignores_the_default()
    {
        uint gref = _guest.Grants.GrantAccess(0, 1, readOnly: false);
        GrantPages pages = _mapper.MapPages(5, [gref], writable: true);
        Assert.Throws<ArgumentException>(() => _mapper.UnmapPages(pages with { Address = pages.Address + 4096 }));
        _mapper.UnmapPages(pages);
        Assert.Throws<ArgumentException>(() => _mapper.UnmapPages(pages));
        _mapper.UnmapPages(default);
        Assert.Equal(GTF_permit_access, _guest.Grants.ReadEntry(gref).Flags);
    }

    [Fact]
    public void MapPages_allocates_nothing_once_warm()
    {
        uint[] refs = [_guest.Grants.GrantAccess(0, 3, readOnly: false), _guest.Grants.GrantAccess(0, 4, readOnly: false)];
        for (int i = 0; i < 10; i++)
            _mapper.UnmapPages(_mapper.MapPages(5, refs, writable: true));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
            _mapper.UnmapPages(_mapper.MapPages(5, refs, writable: true));
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
