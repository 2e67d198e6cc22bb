using XenBackends.Native.IO;
using XenBackends.Rings.Blkif;
using XenBackends.TestSupport;

namespace XenBackends.Backend.Block.Tests;

/// <summary>I/O errors, hostile ring indices and memory pressure: each gets its outcome, the process stays up.</summary>
public sealed class FaultTests
{
    private static void Run(string file, params string[] args) => ChildProcess.Checked(file, args);

    /// <summary>On tmpfs Auto runs requests inline on the queue's thread; Threads hands them off: both map ENOSPC alike.</summary>
    [Theory]
    [InlineData(IoEngineKind.Auto, "inline")]
    [InlineData(IoEngineKind.Threads, "threads")]
    public async Task WritesThatHitAFullFilesystemFailAloneWhileOtherRequestsSucceed(IoEngineKind engine, string expectedEngine)
    {
        // A 512 KiB tmpfs holding a sparse 4 MiB image: writes past the free space get ENOSPC.
        string mount = Directory.CreateTempSubdirectory("blkfull-").FullName;
        Run("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mount);
        try
        {
            string image = Path.Combine(mount, "disk.img");
            using (var f = File.Create(image)) f.SetLength(4 << 20);
            await using var h = await BlockHarness.CreateAsync(0, new BlockBackendOptions { IoEngine = engine }, imagePath: image);
            var front = await h.ConnectAsync(order: 2);
            Assert.Equal(expectedEngine, h.Block.Queues[0].IoEngineName);
            var (frame, gref) = front.AllocateDataPage();
            new Random(9).NextBytes(front.Page(frame));
            var seg = new BlkifRequestSegment { Gref = gref, LastSect = 7 };
            // 200 one-page writes to distinct places need 800 KiB: the tail of them cannot fit.
            for (int i = 0; i < 100; i++)
                front.PutRw(0, BlkifOp.Write, (ulong)i, (ulong)i * 8, [seg]);
            front.Push(0);
            var first = await front.WaitForResponsesAsync(0, 100);
            for (int i = 100; i < 200; i++)
                front.PutRw(0, BlkifOp.Write, (ulong)i, (ulong)i * 8, [seg]);
            front.Push(0);
            var second = await front.WaitForResponsesAsync(0, 100);
            var all = first.Concat(second).ToList();
            Assert.Equal(200, all.Select(r => r.Id).Distinct().Count());
            Assert.Contains(all, r => r.Status == BlkifRsp.Okay);
            Assert.Contains(all, r => r.Status == BlkifRsp.Error);
            Assert.All(all, r => Assert.True(r.Status is BlkifRsp.Okay or BlkifRsp.Error));

            // Every write answered OKAY is on the image; reads still work.
            byte[] disk = File.ReadAllBytes(image);
            foreach (var r in all.Where(r => r.Status == BlkifRsp.Okay))
                Assert.True(disk.AsSpan((int)r.Id * 4096, 4096).SequenceEqual(front.Page(frame)), $"acknowledged write {r.Id} is not on disk");
            var (rf, rg) = front.AllocateDataPage();
            front.PutRw(0, BlkifOp.Read, 999, 0, [new BlkifRequestSegment { Gref = rg, LastSect = 7 }]);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
            Assert.Equal(disk.AsSpan(0, 4096).ToArray(), front.Page(rf).ToArray());
            Assert.True(h.Block.Statistics.ErrorResponses > 0);
            await h.DisposeAsync();
        }
        finally
        {
            Run("umount", "-l", mount);
        }
    }

    /// <summary>Also on tmpfs, where the read runs inline: a shrunk image is an error, never a fault in the process.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ReadPastAnImageShrunkUnderneathIsAShortTransferError(bool onTmpfs)
    {
        string? image = onTmpfs ? $"/dev/shm/xb-shrink-{Guid.NewGuid():N}.img" : null;
        try
        {
            await ReadPastShrunkImageAsync(image, onTmpfs ? "inline" : null);
        }
        finally
        {
            if (image is not null) File.Delete(image);
        }
    }

    private static async Task ReadPastShrunkImageAsync(string? imagePath, string? expectedEngine)
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20, imagePath: imagePath);
        var front = await h.ConnectAsync();
        if (expectedEngine is not null)
            Assert.Equal(expectedEngine, h.Block.Queues[0].IoEngineName);
        using (var f = File.OpenWrite(h.ImagePath)) f.SetLength(64 << 10);
        var (_, g1) = front.AllocateDataPage();
        var (_, g2) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Read, 1, 1024, [new BlkifRequestSegment { Gref = g1, LastSect = 7 }]);
        front.PutRw(0, BlkifOp.Read, 2, 0, [new BlkifRequestSegment { Gref = g2, LastSect = 7 }]);
        front.Push(0);
        var responses = (await front.WaitForResponsesAsync(0, 2)).ToDictionary(r => r.Id, r => r.Status);
        Assert.Equal(BlkifRsp.Error, responses[1]);
        Assert.Equal(BlkifRsp.Okay, responses[2]);
    }

    [Fact]
    public async Task ProducerOverflowHaltsTheRingReportsTheDeviceAndTheProcessStaysUp()
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20);
        var front = await h.ConnectAsync();
        byte[] before = h.ReadImage();
        var ring = front.Queues[0].Ring;
        // Claim more requests than the ring has slots (RING_REQUEST_PROD_OVERFLOW).
        ring.Raw.ReqProd = ring.Size + 5;
        front.Kick(0);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (h.Block.Statistics.RingFaults == 0 && DateTime.UtcNow < deadline)
            await Task.Delay(10);
        Assert.Equal(1, h.Block.Statistics.RingFaults);
        Assert.Contains("req_prod", h.Block.LastFault, StringComparison.Ordinal);
        string? error = null;
        while (error is null && DateTime.UtcNow < deadline)
        {
            error = await h.Store.TryReadStringAsync(h.Device.ErrorPath);
            if (error is null) await Task.Delay(10);
        }
        Assert.Contains("req_prod", error, StringComparison.Ordinal);
        // xenbus_dev_fatal order: the error node first, then Closing.
        string? state = null;
        while (state != "5" && DateTime.UtcNow < deadline)
        {
            state = await h.ReadBackendAsync("state");
            if (state != "5") await Task.Delay(10);
        }
        Assert.Equal("5", state);
        Assert.Equal(0u, ring.Raw.RspProd);
        Assert.True(before.AsSpan().SequenceEqual(h.ReadImage()));
        // Teardown still completes: the halted worker stops and releases its ring.
        await h.Block.DisconnectAsync(CancellationToken.None);
        Assert.Empty(h.Block.Queues);
    }

    [Fact]
    public async Task ExhaustedBufferPoolStopsConsumingCountsOutOfResourcesAndLosesNothing()
    {
        // 256 pages per queue: one largest (256-segment) request at a time.
        await using var h = await BlockHarness.CreateAsync(4 << 20, new BlockBackendOptions { BufferPagesPerQueue = 256 });
        var front = await h.ConnectAsync(order: 1);
        var (frame, gref) = front.AllocateDataPage();
        new Random(4).NextBytes(front.Page(frame));
        var seg = new BlkifRequestSegment { Gref = gref, LastSect = 7 };
        for (int i = 0; i < 40; i++)
        {
            var (ind, indRef) = front.AllocateDataPage();
            front.WriteIndirectPage(ind, Enumerable.Repeat(seg, 16).ToArray());
            front.PutIndirect(0, BlkifOp.Write, (ulong)i, (ulong)i * 128, 16, [indRef]);
        }
        front.Push(0);
        var responses = await front.WaitForResponsesAsync(0, 40);
        Assert.All(responses, r => Assert.Equal(BlkifRsp.Okay, r.Status));
        Assert.True(h.Block.Statistics.OutOfResourceRequests > 0);
        byte[] disk = h.ReadImage();
        for (int i = 0; i < 40 * 16; i++)
            Assert.True(disk.AsSpan(i * 4096, 4096).SequenceEqual(front.Page(frame)), $"page {i} was not written");
    }
}
