using Tmds.Linux;
using XenBackends.Native.Xen;

namespace XenBackends.Native.Tests.Xen;

public sealed class XenGrantMapperTests : IDisposable
{
    private readonly FakeGnttab _library = new();
    private readonly XenGrantMapper _mapper;

    public XenGrantMapperTests() => _mapper = XenGrantMapper.Open(64, "/dev/null", _library);

    public void Dispose()
    {
        _mapper.Dispose();
        _library.Dispose();
    }

    [Fact]
    public void Map_passes_domain_refs_and_protection_and_spans_one_page_per_ref()
    {
        using var region = _mapper.Map(7, [10, 11, 12], writable: true);
        var (domid, refs, prot) = Assert.Single(_library.DomainMaps);
        Assert.Equal(7u, domid);
        Assert.Equal([10u, 11u, 12u], refs);
        Assert.Equal(LibC.PROT_READ | LibC.PROT_WRITE, prot);
        Assert.Equal(3 * 4096, region.Length);
        region.Span[^1] = 0xAB; // the whole length is addressable
    }

    [Fact]
    public void Read_only_map_asks_for_PROT_READ_only()
    {
        using var region = _mapper.Map(7, [10], writable: false);
        Assert.Equal(LibC.PROT_READ, _library.DomainMaps[0].Prot);
    }

    [Fact]
    public void Mixed_domain_map_widens_domids_pairwise()
    {
        using var region = _mapper.Map([1, 2], [30, 31], writable: false);
        var (domids, refs, _) = Assert.Single(_library.MixedMaps);
        Assert.Equal([1u, 2u], domids);
        Assert.Equal([30u, 31u], refs);
        Assert.Throws<ArgumentException>(() => _mapper.Map([1], [30, 31], writable: false));
    }

    [Fact]
    public void Map_failure_is_a_grant_exception_naming_the_call_domain_and_errno()
    {
        _library.MapErrno = LibC.EINVAL;
        var e = Assert.Throws<GrantException>(() => _mapper.Map(9, [5, 6], writable: true));
        Assert.Equal("xengnttab_map_domain_grant_refs", e.Operation);
        Assert.Equal(LibC.EINVAL, e.Errno);
        Assert.Contains("mapping 2 grant(s) of domain 9 read-write", e.Message);
        Assert.Contains("grant reference, domain or access mode was refused", e.Message);
    }

    [Fact]
    public void Failed_map_does_not_keep_the_handle_open()
    {
        _library.MapErrno = LibC.ENOMEM;
        Assert.Throws<GrantException>(() => _mapper.Map(9, [5], writable: true));
        _mapper.Dispose();
        Assert.Equal(1, _library.CloseCalls);
    }

    [Fact]
    public void Empty_ref_list_is_refused_without_calling_the_library()
    {
        Assert.Throws<ArgumentException>(() => _mapper.Map(9, [], writable: true));
        Assert.Empty(_library.DomainMaps);
    }

    [Fact]
    public void Disposing_a_mapping_twice_unmaps_once_with_the_mapped_count()
    {
        var region = _mapper.Map(7, [1, 2, 3, 4], writable: true);
        region.Dispose();
        region.Dispose();
        var (address, count) = Assert.Single(_library.Unmaps);
        Assert.Equal(region.Address, address);
        Assert.Equal(4u, count);
        Assert.Throws<ObjectDisposedException>(() => { _ = region.Span.Length; });
    }

    [Fact]
    public void Mappings_outlive_the_mapper_and_the_handle_closes_after_the_last_one()
    {
        var first = _mapper.Map(7, [1], writable: true);
        var second = _mapper.Map(7, [2], writable: true);
        _mapper.Dispose();
        Assert.Equal(0, _library.CloseCalls);
        first.Span[0] = 1; // still mapped: the ring on top of it may still be draining

        first.Dispose();
        Assert.Equal(0, _library.CloseCalls);
        second.Dispose();
        Assert.Equal(2, _library.Unmaps.Count);
        Assert.Equal(1, _library.CloseCalls); // FakeGnttab also asserts no unmap came after close
    }

    [Fact]
    public void Disposed_mapper_refuses_new_maps_and_copies_and_closes_once()
    {
        _mapper.Dispose();
        _mapper.Dispose();
        Assert.True(_mapper.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => _mapper.Map(7, [1], writable: true));
        Assert.Throws<ObjectDisposedException>(() => _mapper.Copy(new GrantCopySegment[1]));
        Assert.Equal(1, _library.CloseCalls);
    }

    [Fact]
    public void Unmap_failure_is_reported_and_still_releases_the_handle()
    {
        var region = _mapper.Map(7, [1], writable: true);
        _library.UnmapErrno = LibC.EINVAL;
        var e = Assert.Throws<GrantException>(region.Dispose);
        Assert.Equal("xengnttab_unmap", e.Operation);
        _mapper.Dispose();
        Assert.Equal(1, _library.CloseCalls);
    }

    [Fact]
    public void Copy_is_one_library_call_for_the_whole_span_and_leaves_statuses_to_the_caller()
    {
        _library.CopyStatus = GrantStatus.BadGntref;
        var segments = new GrantCopySegment[5];
        _mapper.Copy(segments);
        Assert.Equal([5], _library.CopyCalls);
        Assert.All(segments, s => Assert.Equal(GrantStatus.BadGntref, s.Status));
    }

    [Fact]
    public void Empty_copy_makes_no_call()
    {
        _mapper.Copy([]);
        Assert.Empty(_library.CopyCalls);
    }

    [Fact]
    public void Whole_copy_failure_is_a_grant_exception_naming_the_call()
    {
        _library.CopyErrno = LibC.EFAULT;
        var e = Assert.Throws<GrantException>(() => _mapper.Copy(new GrantCopySegment[3]));
        Assert.Equal("xengnttab_grant_copy", e.Operation);
        Assert.Equal(LibC.EFAULT, e.Errno);
        Assert.Contains("copying 3 segment(s)", e.Message);
    }

    [Fact]
    public void MapPages_maps_like_Map_and_UnmapPages_unmaps_the_mapped_count()
    {
        GrantPages pages = _mapper.MapPages(7, [10, 11], writable: false);
        var (domid, refs, prot) = Assert.Single(_library.DomainMaps);
        Assert.Equal(7u, domid);
        Assert.Equal([10u, 11u], refs);
        Assert.Equal(LibC.PROT_READ, prot);
        Assert.Equal(2, pages.PageCount);
        _mapper.UnmapPages(pages);
        Assert.Equal((pages.Address, 2u), Assert.Single(_library.Unmaps));
        _mapper.UnmapPages(default);
        Assert.Single(_library.Unmaps);
    }

    [Fact]
    public void MapPages_keeps_the_handle_open_after_the_mapper_is_disposed_until_UnmapPages()
    {
        GrantPages pages = _mapper.MapPages(7, [1], writable: true);
        _mapper.Dispose();
        Assert.Equal(0, _library.CloseCalls);
        _mapper.UnmapPages(pages);
        Assert.Equal(1, _library.CloseCalls); // FakeGnttab also asserts no unmap came after close
    }

    [Fact]
    public void MapPages_failure_is_a_grant_exception_and_does_not_keep_the_handle_open()
    {
        _library.MapErrno = LibC.EINVAL;
        var e = Assert.Throws<GrantException>(() => _mapper.MapPages(7, [1], writable: true));
        Assert.Equal("xengnttab_map_domain_grant_refs", e.Operation);
        _mapper.Dispose();
        Assert.Equal(1, _library.CloseCalls);
    }
}
