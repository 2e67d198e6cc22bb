using XenBackends.Native.IO;
using XenBackends.Rings.Blkif;
using XenBackends.TestSupport;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// The grant-copy path through a shared mapping of a memory-resident image: when it is used, that it
/// moves the right bytes, and every case where a store or load through the mapping could raise SIGBUS
/// (a hole on a full tmpfs, a shrunk file) — each must end as an error response or a fall-back to the
/// fd, never as a fault in the process.
/// </summary>
public sealed class ImageMappingTests
{
    private static string ShmImage() => $"/dev/shm/xb-map-{Guid.NewGuid():N}.img";

    private static void Run(string file, params string[] args) => ChildProcess.Checked(file, args);

    private static async Task WithShmImageAsync(Func<string, Task> body)
    {
        string image = ShmImage();
        try
        {
            await body(image);
        }
        finally
        {
            File.Delete(image);
        }
    }

    /// <summary>The first hole of the file, as SEEK_HOLE reports it (the size when there is none).</summary>
    private static long FirstHole(string path)
    {
        using var f = File.OpenHandle(path);
        return ImageMapping.FirstHole(f.DangerousGetHandle().ToInt32());
    }

    [Fact]
    public async Task AutoCopiesThroughTheMappingAndMovesTheRightBytes()
    {
        await WithShmImageAsync(async image =>
        {
            await using var h = await BlockHarness.CreateAsync(1 << 20, imagePath: image);
            var front = await h.ConnectAsync();
            Assert.True(h.Block.Queues[0].CopiesThroughImageMapping);
            Assert.Equal("inline", h.Block.Queues[0].IoEngineName);
            Assert.NotNull(h.Block.Image!.Mapping);

            // Three segments with partial sectors (first_sect 2..5 of one page, then whole pages).
            var (f1, g1) = front.AllocateDataPage();
            var (f2, g2) = front.AllocateDataPage();
            var (f3, g3) = front.AllocateDataPage();
            new Random(21).NextBytes(front.Page(f1));
            new Random(22).NextBytes(front.Page(f2));
            new Random(23).NextBytes(front.Page(f3));
            BlkifRequestSegment[] write =
            [
                new() { Gref = g1, FirstSect = 2, LastSect = 5 },
                new() { Gref = g2, FirstSect = 0, LastSect = 7 },
                new() { Gref = g3, FirstSect = 0, LastSect = 7 },
            ];
            front.PutRw(0, BlkifOp.Write, 1, 40, write);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
            byte[] disk = h.ReadImage();
            Assert.Equal(front.Page(f1).Slice(2 * 512, 4 * 512).ToArray(), disk.AsSpan(40 * 512, 4 * 512).ToArray());
            Assert.Equal(front.Page(f2).ToArray(), disk.AsSpan(44 * 512, 4096).ToArray());
            Assert.Equal(front.Page(f3).ToArray(), disk.AsSpan(52 * 512, 4096).ToArray());

            // Read it back into other pages, at other offsets within them.
            var (r1, rg1) = front.AllocateDataPage();
            var (r2, rg2) = front.AllocateDataPage();
            front.PutRw(0, BlkifOp.Read, 2, 40, [new() { Gref = rg1, FirstSect = 4, LastSect = 7 }, new() { Gref = rg2, FirstSect = 0, LastSect = 7 }]);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
            Assert.Equal(disk.AsSpan(40 * 512, 4 * 512).ToArray(), front.Page(r1).Slice(4 * 512, 4 * 512).ToArray());
            Assert.Equal(disk.AsSpan(44 * 512, 4096).ToArray(), front.Page(r2).ToArray());

            // An indirect read of 64 pages from the end of the image: the batch is bigger than any one request.
            var grefs = new (uint Frame, uint Gref)[64];
            for (int i = 0; i < grefs.Length; i++) grefs[i] = front.AllocateDataPage();
            var segments = grefs.Select(p => new BlkifRequestSegment { Gref = p.Gref, LastSect = 7 }).ToArray();
            var (indirectFrame, indirectRef) = front.AllocateDataPage();
            front.WriteIndirectPage(indirectFrame, segments);
            ulong last = (1 << 20) / 512 - 64 * 8;
            front.PutIndirect(0, BlkifOp.Read, 3, last, 64, [indirectRef]);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
            for (int i = 0; i < grefs.Length; i++)
                Assert.True(front.Page(grefs[i].Frame).SequenceEqual(disk.AsSpan((int)(last * 512) + i * 4096, 4096)), $"page {i}");
            Assert.True(h.Block.Queues[0].CopiesThroughImageMapping);
        });
    }

    [Fact]
    public async Task OnlyAutoOnAFullyAllocatedMemoryImageIsMapped()
    {
        // Sparse on tmpfs: a store into a hole may have to allocate (SIGBUS when full), so no mapping.
        await WithShmImageAsync(async image =>
        {
            using (var f = File.Create(image)) f.SetLength(1 << 20);
            await using var h = await BlockHarness.CreateAsync(1 << 20, imagePath: image);
            var front = await h.ConnectAsync();
            Assert.False(h.Block.Queues[0].CopiesThroughImageMapping);
            Assert.Null(h.Block.Image!.Mapping);
            var (frame, gref) = front.AllocateDataPage();
            new Random(3).NextBytes(front.Page(frame));
            front.PutRw(0, BlkifOp.Write, 1, 8, [new BlkifRequestSegment { Gref = gref, LastSect = 7 }]);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
            Assert.Equal(front.Page(frame).ToArray(), h.ReadImage().AsSpan(8 * 512, 4096).ToArray());
        });
        // An engine the administrator chose, and the grant-map path, keep going through the fd.
        foreach (var options in new[]
        {
            new BlockBackendOptions { IoEngine = IoEngineKind.Inline },
            new BlockBackendOptions { IoEngine = IoEngineKind.Threads },
            new BlockBackendOptions { DataPath = BlockDataPath.GrantMap },
        })
        {
            await WithShmImageAsync(async image =>
            {
                await using var h = await BlockHarness.CreateAsync(1 << 20, options, imagePath: image);
                await h.ConnectAsync();
                Assert.False(h.Block.Queues[0].CopiesThroughImageMapping, options.ToString());
            });
        }
        // A disk filesystem: never.
        await using var onDisk = await BlockHarness.CreateAsync(1 << 20);
        await onDisk.ConnectAsync();
        Assert.False(onDisk.Block.Queues[0].CopiesThroughImageMapping);
    }

    /// <summary>
    /// The case that would fault: a full tmpfs. Discard zeroes through the mapping instead of punching
    /// a hole, so every later write still lands in an allocated page: no SIGBUS, no ENOSPC.
    /// </summary>
    [Fact]
    public async Task OnAFullTmpfsDiscardKeepsThePagesAndLaterWritesSucceed()
    {
        string mount = Directory.CreateTempSubdirectory("blkmapfull-").FullName;
        Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount);
        try
        {
            string image = Path.Combine(mount, "disk.img");
            await using var h = await BlockHarness.CreateAsync(512 << 10, imagePath: image);
            // Fill the rest of the filesystem.
            try
            {
                using var filler = File.Create(Path.Combine(mount, "filler"));
                var chunk = new byte[4096];
                while (true) filler.Write(chunk);
            }
            catch (IOException)
            {
            }
            var front = await h.ConnectAsync();
            Assert.True(h.Block.Queues[0].CopiesThroughImageMapping);

            // Discard the whole image, then rewrite all of it: with hole punching the writes would
            // need pages the full filesystem no longer has.
            front.PutDiscard(0, 1, 0, (512 << 10) / 512);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
            Assert.Equal(512 << 10, FirstHole(image));
            Assert.All(h.ReadImage(), b => Assert.Equal(0, b));
            var (frame, gref) = front.AllocateDataPage();
            new Random(8).NextBytes(front.Page(frame));
            for (int round = 0; round < 4; round++)
            {
                // 32 at a time: the ring has 32 slots.
                for (int i = round * 32; i < round * 32 + 32; i++)
                    front.PutRw(0, BlkifOp.Write, (ulong)(100 + i), (ulong)i * 8, [new BlkifRequestSegment { Gref = gref, LastSect = 7 }]);
                front.Push(0);
                var responses = await front.WaitForResponsesAsync(0, 32);
                Assert.All(responses, r => Assert.Equal(BlkifRsp.Okay, r.Status));
            }
            byte[] disk = h.ReadImage();
            for (int i = 0; i < 128; i++)
                Assert.True(disk.AsSpan(i * 4096, 4096).SequenceEqual(front.Page(frame)), $"page {i}");
            // A secure discard of part of it zeroes too.
            front.PutDiscard(0, 300, 16, 16, BlkifDiscardFlags.Secure);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
            Assert.All(h.ReadImage().AsSpan(16 * 512, 16 * 512).ToArray(), b => Assert.Equal(0, b));
            Assert.Equal(512 << 10, FirstHole(image));
            Assert.True(h.Block.Queues[0].CopiesThroughImageMapping);
            await h.DisposeAsync();
        }
        finally
        {
            Run("umount", "-l", mount);
        }
    }

    /// <summary>Truncated by someone else between drains: the next drain gives the mapping up; the fd reports the short read.</summary>
    [Fact]
    public async Task AShrunkImageIsNoticedAtTheNextDrainAndServedThroughTheFd()
    {
        await WithShmImageAsync(async image =>
        {
            await using var h = await BlockHarness.CreateAsync(1 << 20, imagePath: image);
            var front = await h.ConnectAsync();
            Assert.True(h.Block.Queues[0].CopiesThroughImageMapping);
            using (var f = File.OpenWrite(image)) f.SetLength(64 << 10);
            var (_, g1) = front.AllocateDataPage();
            var (_, g2) = front.AllocateDataPage();
            var (f3, g3) = front.AllocateDataPage();
            new Random(5).NextBytes(front.Page(f3));
            front.PutRw(0, BlkifOp.Read, 1, 1024, [new BlkifRequestSegment { Gref = g1, LastSect = 7 }]);
            front.PutRw(0, BlkifOp.Read, 2, 0, [new BlkifRequestSegment { Gref = g2, LastSect = 7 }]);
            front.PutRw(0, BlkifOp.Write, 3, 1032, [new BlkifRequestSegment { Gref = g3, LastSect = 7 }]);
            front.PutDiscard(0, 4, 1040, 8);
            front.Push(0);
            var responses = (await front.WaitForResponsesAsync(0, 4)).ToDictionary(r => r.Id, r => r.Status);
            Assert.Equal(BlkifRsp.Error, responses[1]);
            Assert.Equal(BlkifRsp.Okay, responses[2]);
            // Past the end, pwritev extends the file (the guest still sees the old size); the point is
            // that nothing faulted and the mapping is never used again.
            Assert.False(h.Block.Queues[0].CopiesThroughImageMapping);
            front.PutRw(0, BlkifOp.Read, 5, 8, [new BlkifRequestSegment { Gref = g2, LastSect = 7 }]);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        });
    }

    /// <summary>An online resize gives the mapping up before the new size is published; the new part is served.</summary>
    [Fact]
    public async Task AResizeGivesTheMappingUpAndTheGrownPartIsServed()
    {
        await WithShmImageAsync(async image =>
        {
            await using var h = await BlockHarness.CreateAsync(1 << 20, imagePath: image);
            var front = await h.ConnectAsync();
            Assert.True(h.Block.Queues[0].CopiesThroughImageMapping);
            using (var f = File.OpenWrite(image)) f.SetLength(2 << 20);
            Assert.True(await h.Block.ResizeAsync());
            Assert.False(h.Block.Queues[0].CopiesThroughImageMapping);
            var (frame, gref) = front.AllocateDataPage();
            new Random(6).NextBytes(front.Page(frame));
            front.PutRw(0, BlkifOp.Write, 1, 3000, [new BlkifRequestSegment { Gref = gref, LastSect = 7 }]);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
            Assert.Equal(front.Page(frame).ToArray(), h.ReadImage().AsSpan(3000 * 512, 4096).ToArray());
        });
    }

    /// <summary>A bad grant in a mapped request fails that request alone; the image is untouched by it.</summary>
    [Fact]
    public async Task ABadGrantFailsOnlyItsRequest()
    {
        await WithShmImageAsync(async image =>
        {
            await using var h = await BlockHarness.CreateAsync(1 << 20, imagePath: image);
            var front = await h.ConnectAsync();
            Assert.True(h.Block.Queues[0].CopiesThroughImageMapping);
            byte[] before = h.ReadImage();
            var (good, goodRef) = front.AllocateDataPage();
            var (_, readOnlyRef) = front.AllocateDataPage(readOnly: true);
            new Random(7).NextBytes(front.Page(good));
            // A write whose second page is an unknown ref; a read into a read-only grant; a good write.
            front.PutRw(0, BlkifOp.Write, 1, 0, [new() { Gref = goodRef, LastSect = 7 }, new() { Gref = 99999, LastSect = 7 }]);
            front.PutRw(0, BlkifOp.Read, 2, 0, [new() { Gref = readOnlyRef, LastSect = 7 }]);
            front.PutRw(0, BlkifOp.Write, 3, 64, [new() { Gref = goodRef, LastSect = 7 }]);
            front.Push(0);
            var responses = (await front.WaitForResponsesAsync(0, 3)).ToDictionary(r => r.Id, r => r.Status);
            Assert.Equal(BlkifRsp.Error, responses[1]);
            Assert.Equal(BlkifRsp.Error, responses[2]);
            Assert.Equal(BlkifRsp.Okay, responses[3]);
            byte[] after = h.ReadImage();
            Assert.Equal(front.Page(good).ToArray(), after.AsSpan(64 * 512, 4096).ToArray());
            // What a failed request did land is the guest's own data in its own range (blkback's
            // contract is the same: an errored write leaves its range undefined); outside it, nothing moved.
            Assert.True(before.AsSpan(8192, 64 * 512 - 8192).SequenceEqual(after.AsSpan(8192, 64 * 512 - 8192)));
            Assert.True(before.AsSpan(64 * 512 + 4096).SequenceEqual(after.AsSpan(64 * 512 + 4096)));
        });
    }

    /// <summary>Several queues share one mapping; each holds a reference, so disconnecting them in any order is safe.</summary>
    [Fact]
    public async Task FourQueuesShareTheMappingAndReconnectReusesIt()
    {
        await WithShmImageAsync(async image =>
        {
            await using var h = await BlockHarness.CreateAsync(1 << 20, imagePath: image);
            var front = await h.ConnectAsync(queues: 4);
            Assert.All(h.Block.Queues, q => Assert.True(q.CopiesThroughImageMapping));
            var pages = new (uint Frame, uint Gref)[4];
            for (int q = 0; q < 4; q++)
            {
                pages[q] = front.AllocateDataPage();
                new Random(30 + q).NextBytes(front.Page(pages[q].Frame));
                front.PutRw(q, BlkifOp.Write, (ulong)q, (ulong)q * 8, [new BlkifRequestSegment { Gref = pages[q].Gref, LastSect = 7 }]);
                front.Push(q);
            }
            for (int q = 0; q < 4; q++)
                Assert.Equal(BlkifRsp.Okay, (await front.WaitForResponsesAsync(q, 1))[0].Status);
            byte[] disk = h.ReadImage();
            for (int q = 0; q < 4; q++)
                Assert.True(disk.AsSpan(q * 4096, 4096).SequenceEqual(front.Page(pages[q].Frame)));
            await h.Block.DisconnectAsync(CancellationToken.None);
            // The image still holds its reference: a fresh connect maps through the same mapping.
            Assert.True(h.Block.Image!.Mapping!.IsUsable);
            Assert.True(h.Block.Image.Mapping.AddReference());
            h.Block.Image.Mapping.Release();
        });
    }

    /// <summary>
    /// Mapped requests take no bounce page, so one drain can hold more segments than the batch (sized
    /// by the pool): the batch is run early and every request still gets its own bytes.
    /// </summary>
    [Fact]
    public async Task ADrainWithMoreSegmentsThanTheBatchRunsItEarlyAndMovesEveryByte()
    {
        await WithShmImageAsync(async image =>
        {
            var options = new BlockBackendOptions { BufferPagesPerQueue = 256 };
            await using var h = await BlockHarness.CreateAsync(4 << 20, options, imagePath: image);
            var front = await h.ConnectAsync();
            Assert.True(h.Block.Queues[0].CopiesThroughImageMapping);
            const int requests = 4, perRequest = 128; // 512 segments > the 256-entry batch
            var writePages = new (uint Frame, uint Gref)[requests, perRequest];
            var readPages = new (uint Frame, uint Gref)[requests, perRequest];
            var random = new Random(40);
            for (int r = 0; r < requests; r++)
            {
                var writes = new BlkifRequestSegment[perRequest];
                var reads = new BlkifRequestSegment[perRequest];
                for (int i = 0; i < perRequest; i++)
                {
                    writePages[r, i] = front.AllocateDataPage();
                    random.NextBytes(front.Page(writePages[r, i].Frame));
                    readPages[r, i] = front.AllocateDataPage();
                    writes[i] = new BlkifRequestSegment { Gref = writePages[r, i].Gref, LastSect = 7 };
                    reads[i] = new BlkifRequestSegment { Gref = readPages[r, i].Gref, LastSect = 7 };
                }
                var (wf, wg) = front.AllocateDataPage();
                front.WriteIndirectPage(wf, writes);
                front.PutIndirect(0, BlkifOp.Write, (ulong)r, (ulong)(r * perRequest * 8), perRequest, [wg]);
                // The reads cover the second half of the image, written by the image's creator only.
                var (rf, rg) = front.AllocateDataPage();
                front.WriteIndirectPage(rf, reads);
                front.PutIndirect(0, BlkifOp.Read, (ulong)(100 + r), (ulong)((2 << 20) / 512 + r * perRequest * 8), perRequest, [rg]);
            }
            front.Push(0);
            var responses = await front.WaitForResponsesAsync(0, 2 * requests);
            Assert.All(responses, x => Assert.Equal(BlkifRsp.Okay, x.Status));
            byte[] disk = h.ReadImage();
            for (int r = 0; r < requests; r++)
                for (int i = 0; i < perRequest; i++)
                {
                    int at = (r * perRequest + i) * 4096;
                    Assert.True(disk.AsSpan(at, 4096).SequenceEqual(front.Page(writePages[r, i].Frame)), $"write {r} page {i}");
                    Assert.True(disk.AsSpan((2 << 20) + at, 4096).SequenceEqual(front.Page(readPages[r, i].Frame)), $"read {r} page {i}");
                }
        });
    }
}
