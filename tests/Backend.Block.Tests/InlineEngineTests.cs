using XenBackends.Native.IO;
using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// Which engine Auto picks, and the flush family through the inline engine (requests run on the
/// queue's own thread): each promise blkif.h makes for flush and barrier, checked on the image.
/// </summary>
public sealed class InlineEngineTests
{
    private static string ShmImage() => $"/dev/shm/xb-inline-{Guid.NewGuid():N}.img";

    [Fact]
    public async Task AutoRunsInlineOnTmpfsButNotOnADiskFilesystem()
    {
        string image = ShmImage();
        try
        {
            await using (var onTmpfs = await BlockHarness.CreateAsync(1 << 20, imagePath: image))
            {
                await onTmpfs.ConnectAsync();
                Assert.Equal("inline", onTmpfs.Block.Queues[0].IoEngineName);
            }
        }
        finally
        {
            File.Delete(image);
        }
        // /var/tmp is on a disk filesystem by convention (FHS): a device could stall there, so no inline.
        string disk = $"/var/tmp/xb-inline-{Guid.NewGuid():N}.img";
        try
        {
            await using var onDisk = await BlockHarness.CreateAsync(1 << 20, imagePath: disk);
            await onDisk.ConnectAsync();
            Assert.NotEqual("inline", onDisk.Block.Queues[0].IoEngineName);
        }
        finally
        {
            File.Delete(disk);
        }
    }

    [Fact]
    public async Task AnAdministratorMayAskForInlineOnAnyFile()
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20, new BlockBackendOptions { IoEngine = IoEngineKind.Inline });
        var front = await h.ConnectAsync();
        Assert.Equal("inline", h.Block.Queues[0].IoEngineName);
        var (frame, gref) = front.AllocateDataPage();
        new Random(4).NextBytes(front.Page(frame));
        front.PutRw(0, BlkifOp.Write, 1, 8, [new BlkifRequestSegment { Gref = gref, LastSect = 7 }]);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        Assert.Equal(front.Page(frame).ToArray(), h.ReadImage().AsSpan(8 * 512, 4096).ToArray());
    }

    [Fact]
    public async Task FlushWithDataBarrierAndEmptyFlushAreAnsweredAfterTheirDataIsOnTheImage()
    {
        string image = ShmImage();
        try
        {
            await using var h = await BlockHarness.CreateAsync(1 << 20, imagePath: image);
            var front = await h.ConnectAsync();
            Assert.Equal("inline", h.Block.Queues[0].IoEngineName);
            var (f1, g1) = front.AllocateDataPage();
            var (f2, g2) = front.AllocateDataPage();
            new Random(11).NextBytes(front.Page(f1));
            new Random(12).NextBytes(front.Page(f2));

            // blkif.h: FLUSH_DISKCACHE with segments is "flush, then write"; WRITE_BARRIER is "drain,
            // write, flush"; an empty flush only flushes. All three in one drain, behind a plain write.
            front.PutRw(0, BlkifOp.Write, 1, 0, [new BlkifRequestSegment { Gref = g1, LastSect = 7 }]);
            front.PutRw(0, BlkifOp.FlushDiskCache, 2, 8, [new BlkifRequestSegment { Gref = g2, LastSect = 7 }]);
            front.PutRw(0, BlkifOp.WriteBarrier, 3, 16, [new BlkifRequestSegment { Gref = g1, FirstSect = 4, LastSect = 7 }]);
            front.PutRw(0, BlkifOp.FlushDiskCache, 4, ulong.MaxValue, []);
            front.Push(0);
            var responses = (await front.WaitForResponsesAsync(0, 4)).ToDictionary(r => r.Id);
            Assert.All(responses.Values, r => Assert.Equal(BlkifRsp.Okay, r.Status));
            Assert.Equal(BlkifOp.FlushDiskCache, responses[2].Operation);
            Assert.Equal(BlkifOp.WriteBarrier, responses[3].Operation);

            byte[] disk = h.ReadImage();
            Assert.Equal(front.Page(f1).ToArray(), disk.AsSpan(0, 4096).ToArray());
            Assert.Equal(front.Page(f2).ToArray(), disk.AsSpan(8 * 512, 4096).ToArray());
            Assert.Equal(front.Page(f1).Slice(4 * 512, 2048).ToArray(), disk.AsSpan(16 * 512, 2048).ToArray());
            Assert.Equal(3, h.Block.Statistics.FlushRequests);
            Assert.Equal(0, h.Block.Statistics.ErrorResponses);
        }
        finally
        {
            File.Delete(image);
        }
    }
}
