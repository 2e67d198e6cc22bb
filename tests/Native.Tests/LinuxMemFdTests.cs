using XenBackends.Native.Linux;

namespace XenBackends.Native.Tests;

public class LinuxMemFdTests
{
    [Fact]
    public void Two_mappings_of_one_memfd_see_each_others_writes()
    {
        using var memfd = MemFd.Create("test", 4);
        using var a = memfd.MapAll(writable: true);
        using var b = memfd.Map(firstPage: 2, pageCount: 1, writable: false);
        a.Span[2 * MemFd.PageSize + 7] = 0x5A;
        Assert.Equal(0x5A, b.Span[7]);
        Assert.Equal(4 * MemFd.PageSize, a.Length);
        Assert.Equal(0, a.Address % MemFd.PageSize);
    }

    [Fact]
    public void MapPages_places_scattered_pages_contiguously_in_the_given_order()
    {
        using var memfd = MemFd.Create("test", 8);
        using var all = memfd.MapAll(writable: true);
        for (int p = 0; p < 8; p++)
            all.Span.Slice(p * MemFd.PageSize, MemFd.PageSize).Fill((byte)(0x10 + p));
        long[] order = [5, 1, 2, 3, 7, 0];
        using var view = memfd.MapPages(order, writable: true);
        Assert.Equal(order.Length * MemFd.PageSize, view.Length);
        for (int i = 0; i < order.Length; i++)
        {
            Assert.Equal((byte)(0x10 + order[i]), view.Span[i * MemFd.PageSize]);
            Assert.Equal((byte)(0x10 + order[i]), view.Span[i * MemFd.PageSize + MemFd.PageSize - 1]);
        }
        view.Span[4 * MemFd.PageSize + 1] = 0xEE; // page 7 through the view
        Assert.Equal(0xEE, all.Span[7 * MemFd.PageSize + 1]);
    }

    [Fact]
    public void Pages_outside_the_file_are_refused()
    {
        using var memfd = MemFd.Create("test", 2);
        Assert.Throws<ArgumentOutOfRangeException>(() => memfd.Map(1, 2, writable: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => memfd.MapPages([0, 2], writable: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => memfd.MapPages([-1], writable: false));
        Assert.Throws<ArgumentException>(() => memfd.MapPages([], writable: false));
    }

    [Fact]
    public void A_size_sealed_memfd_can_be_adopted_through_a_duplicate_fd()
    {
        using var memfd = MemFd.Create("sealed", 1, sealSize: true);
        using var dup = memfd.Handle.Duplicate();
        using var adopted = MemFd.Adopt(dup);
        Assert.Equal(1, adopted.PageCount);
    }

    [Fact]
    public void Adopt_requires_a_size_seal_when_asked()
    {
        using var memfd = MemFd.Create("unsealed", 1, sealSize: false);
        var dup = memfd.Handle.Duplicate();
        Assert.Throws<ArgumentException>(() => MemFd.Adopt(dup, requireSealedSize: true));
        dup.Dispose();
        using var ok = MemFd.Adopt(memfd.Handle.Duplicate(), requireSealedSize: false);
        Assert.Equal(MemFd.PageSize, ok.Size);
    }

    [Fact]
    public void Disposed_mapping_refuses_its_span()
    {
        using var memfd = MemFd.Create("test", 1);
        var m = memfd.MapAll(writable: true);
        m.Dispose();
        m.Dispose();
        Assert.True(m.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => m.Span.Length);
    }
}
