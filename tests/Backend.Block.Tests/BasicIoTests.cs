using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

public sealed class BasicIoTests
{
    [Theory]
    [InlineData(BlkifAbi.X86_64, BlockDataPath.GrantCopy)]
    [InlineData(BlkifAbi.X86_32, BlockDataPath.GrantCopy)]
    [InlineData(BlkifAbi.X86_64, BlockDataPath.GrantMap)]
    [InlineData(BlkifAbi.X86_32, BlockDataPath.GrantMap)]
    public async Task WriteThenReadOneSegmentRoundTripsThroughTheImage(BlkifAbi abi, BlockDataPath path)
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20, new BlockBackendOptions { DataPath = path });
        var front = await h.ConnectAsync(abi);
        var (wFrame, wRef) = front.AllocateDataPage(readOnly: true);
        new Random(3).NextBytes(front.Page(wFrame));
        // Sectors 2..5 of the page land at disk sector 16.
        front.PutRw(0, BlkifOp.Write, 77, 16, [new BlkifRequestSegment { Gref = wRef, FirstSect = 2, LastSect = 5 }]);
        var w = await front.RoundTripAsync(0);
        Assert.Equal(new TestBlkfront.Response(77, BlkifOp.Write, BlkifRsp.Okay), w);
        byte[] image = h.ReadImage();
        Assert.Equal(front.Page(wFrame).Slice(2 * 512, 4 * 512).ToArray(), image.AsSpan(16 * 512, 4 * 512).ToArray());

        var (rFrame, rRef) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Read, 78, 15, [new BlkifRequestSegment { Gref = rRef, FirstSect = 0, LastSect = 7 }]);
        var r = await front.RoundTripAsync(0);
        Assert.Equal(new TestBlkfront.Response(78, BlkifOp.Read, BlkifRsp.Okay), r);
        Assert.Equal(image.AsSpan(15 * 512, 4096).ToArray(), front.Page(rFrame).ToArray());
        Assert.Equal(1, h.Block.Statistics.ReadRequests);
        Assert.Equal(1, h.Block.Statistics.WriteRequests);
        Assert.Equal(8, h.Block.Statistics.ReadSectors);
        Assert.Equal(4, h.Block.Statistics.WriteSectors);
        Assert.Equal(2, h.Block.Statistics.Latency.Total);
    }
}
