using XenBackends.Rings.Blkif;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Block.Tests;

/// <summary>The benchmark-only null image: explicit in params, zeros on read, writes dropped, nothing touches a file.</summary>
public sealed class NullImageTests
{
    [Theory]
    [InlineData("null:", BlockConfiguration.DefaultNullImageBytes)]
    [InlineData("null:1048576", 1L << 20)]
    [InlineData("null:4G", 4L << 30)]
    [InlineData("null:2t", 2L << 40)]
    public void NullParamsGiveANullImageOfThatSize(string value, long bytes)
    {
        var c = BlockConfiguration.Parse("backend/vbd/7/51712", value, "w", null, null, null);
        Assert.Equal(bytes, c.NullImageBytes);
    }

    [Theory]
    [InlineData("null:0")]
    [InlineData("null:-1")]
    [InlineData("null:1000")]
    [InlineData("null:12X")]
    [InlineData("null:99999999999T")]
    public void AMalformedNullSizeIsRefused(string value) =>
        Assert.Throws<FrontendConfigurationException>(() => BlockConfiguration.Parse("backend/vbd/7/51712", value, "w", null, null, null));

    [Fact]
    public void AnOrdinaryPathIsNeverANullImage() =>
        Assert.Null(BlockConfiguration.Parse("backend/vbd/7/51712", "/images/null:1G", "w", null, null, null).NullImageBytes);

    [Theory]
    [InlineData(BlockDataPath.GrantCopy)]
    [InlineData(BlockDataPath.GrantMap)]
    public async Task ReadsReturnZerosAndWritesLeaveNoTrace(BlockDataPath path)
    {
        await using var h = await BlockHarness.CreateAsync(4096, new BlockBackendOptions { DataPath = path },
            new Dictionary<string, string?> { ["params"] = "null:1M" });
        byte[] fileBefore = h.ReadImage();
        var front = await h.ConnectAsync();
        Assert.Equal("2048", await h.ReadBackendAsync("sectors"));
        Assert.True(h.Block.Image!.IsNull);

        var (wFrame, wRef) = front.AllocateDataPage();
        front.Page(wFrame).Fill(0xAB);
        front.PutRw(0, BlkifOp.Write, 1, 2040, [new BlkifRequestSegment { Gref = wRef, FirstSect = 0, LastSect = 7 }]);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);

        // The same guest page read back: a real disk would return 0xAB, the null one zeros.
        front.PutRw(0, BlkifOp.Read, 2, 2040, [new BlkifRequestSegment { Gref = wRef, FirstSect = 1, LastSect = 6 }]);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        byte[] page = front.Page(wFrame).ToArray();
        Assert.All(page.AsSpan(512, 6 * 512).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(0xAB, page[0]);
        Assert.Equal(0xAB, page[4095]);

        front.PutRw(0, BlkifOp.FlushDiskCache, 3, 0, []);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        // Range checks still apply: the null device has a size.
        front.PutRw(0, BlkifOp.Read, 4, 2048, [new BlkifRequestSegment { Gref = wRef, FirstSect = 0, LastSect = 0 }]);
        Assert.Equal(BlkifRsp.Error, (await front.RoundTripAsync(0)).Status);
        // The file the harness happened to create was never opened.
        Assert.Equal(fileBefore, h.ReadImage());
    }
}
