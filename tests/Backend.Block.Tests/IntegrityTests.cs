using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// Random mixed reads, writes (direct and indirect), discards (plain and secure), flushes and
/// barriers with many requests in flight on every queue; every read is checked against a shadow
/// copy when it completes and the image file must equal the shadow at the end. In-flight requests
/// never overlap (each holds a disk region), so the shadow is exact whatever order they finish in.
/// </summary>
public sealed class IntegrityTests
{
    private const int RegionSectors = 512;
    private const int Regions = 64;
    private const long ImageBytes = (long)RegionSectors * Regions * 512; // 16 MiB

    private sealed class Pending
    {
        public required byte Op;
        public required int Region;
        public required long Sector;
        public required List<(uint Frame, uint Gref, BlkifRequestSegment Seg)> Pages;
        public uint IndirectFrame = uint.MaxValue;
        public uint IndirectGref;
        public byte[]? Data;
        public long DiscardSectors;
    }

    [Theory]
    [InlineData(BlkifAbi.X86_64, BlockDataPath.GrantCopy, 2, 1)]
    [InlineData(BlkifAbi.X86_32, BlockDataPath.GrantCopy, 0, 1)]
    [InlineData(BlkifAbi.X86_64, BlockDataPath.GrantMap, 1, 2)]
    [InlineData(BlkifAbi.X86_32, BlockDataPath.GrantMap, 2, 1)]
    [InlineData(BlkifAbi.X86_32, BlockDataPath.GrantCopy, 1, 3)]
    public Task RandomMixedIoKeepsTheImageEqualToAShadowCopy(BlkifAbi abi, BlockDataPath path, int order, int queues) =>
        RunMixedIoAsync(abi, path, order, queues, imagePath: null, expectedEngine: null);

    /// <summary>
    /// The same on a tmpfs image, where Auto runs every request inline on the queue's thread: reads,
    /// writes, discards, flushes and barriers all go through the inline engine. Plain discards only:
    /// tmpfs has no FALLOC_FL_ZERO_RANGE, so a secure discard there is EOPNOTSUPP and withdraws
    /// feature-discard (whatever the engine).
    /// </summary>
    [Theory]
    [InlineData(BlkifAbi.X86_64, BlockDataPath.GrantCopy, 2, 2)]
    [InlineData(BlkifAbi.X86_32, BlockDataPath.GrantCopy, 0, 1)]
    [InlineData(BlkifAbi.X86_64, BlockDataPath.GrantMap, 1, 1)]
    public async Task RandomMixedIoOnATmpfsImageRunsInlineAndKeepsTheImageEqualToAShadowCopy(BlkifAbi abi, BlockDataPath path, int order, int queues)
    {
        string image = $"/dev/shm/xb-integrity-{Guid.NewGuid():N}.img";
        try
        {
            await RunMixedIoAsync(abi, path, order, queues, image, expectedEngine: "inline");
        }
        finally
        {
            File.Delete(image);
        }
    }

    private static async Task RunMixedIoAsync(BlkifAbi abi, BlockDataPath path, int order, int queues, string? imagePath, string? expectedEngine)
    {
        await using var h = await BlockHarness.CreateAsync(ImageBytes, new BlockBackendOptions { DataPath = path, MaxQueues = 4 }, imagePath: imagePath);
        byte[] shadow = h.ReadImage();
        var front = await h.ConnectAsync(abi, order, queues);
        if (expectedEngine is not null)
            Assert.All(h.Block.Queues, q => Assert.Equal(expectedEngine, q.IoEngineName));
        var rng = new Random(order * 10 + queues + (int)abi * 100 + (int)path * 1000);
        var freePages = new Stack<(uint Frame, uint Gref)>();
        for (int i = 0; i < 6000; i++) freePages.Push(front.AllocateDataPage());
        var busy = new bool[Regions];
        var pending = new Dictionary<ulong, Pending>[queues];
        for (int q = 0; q < queues; q++) pending[q] = [];
        int depth = Math.Min(32, (int)front.Queues[0].Ring.Size);
        const int opsPerQueue = 400;
        var issued = new int[queues];
        ulong nextId = 1;
        int reads = 0, writes = 0, discards = 0, flushes = 0;

        while (true)
        {
            bool any = false;
            for (int q = 0; q < queues; q++)
            {
                while (issued[q] < opsPerQueue && pending[q].Count < depth)
                {
                    int region = PickFreeRegion(rng, busy);
                    if (region < 0) break;
                    var p = Issue(front, q, nextId, region, rng, freePages, secureDiscards: imagePath is null, ref reads, ref writes, ref discards, ref flushes);
                    busy[region] = true;
                    pending[q][nextId++] = p;
                    issued[q]++;
                    any = true;
                }
                front.Push(q);
            }
            if (!any && pending.All(d => d.Count == 0))
                break;
            foreach (var (q, r) in await front.WaitAnyAsync())
            {
                Assert.True(pending[q].Remove(r.Id, out var p), $"response for unknown id {r.Id}");
                Assert.True(r.Status == BlkifRsp.Okay, $"request {r.Id} (op {p!.Op}) failed with {r.Status}");
                Apply(front, p, shadow);
                busy[p.Region] = false;
                foreach (var page in p.Pages) freePages.Push((page.Frame, page.Gref));
                if (p.IndirectFrame != uint.MaxValue) freePages.Push((p.IndirectFrame, p.IndirectGref));
            }
        }

        await h.Block.DisconnectAsync(CancellationToken.None);
        byte[] image = h.ReadImage();
        Assert.True(shadow.AsSpan().SequenceEqual(image), $"image differs from the shadow at byte {shadow.AsSpan().CommonPrefixLength(image)}");
        var stats = h.Block.Statistics;
        Assert.Equal(reads, stats.ReadRequests);
        Assert.Equal(writes, stats.WriteRequests);
        Assert.Equal(discards, stats.DiscardRequests);
        Assert.Equal(flushes, stats.FlushRequests);
        Assert.Equal(0, stats.ErrorResponses);
        Assert.Equal(queues * opsPerQueue, stats.Latency.Total);
    }

    private static int PickFreeRegion(Random rng, bool[] busy)
    {
        int start = rng.Next(Regions);
        for (int i = 0; i < Regions; i++)
        {
            int r = (start + i) % Regions;
            if (!busy[r]) return r;
        }
        return -1;
    }

    private static Pending Issue(TestBlkfront f, int q, ulong id, int region, Random rng, Stack<(uint, uint)> free, bool secureDiscards,
        ref int reads, ref int writes, ref int discards, ref int flushes)
    {
        long regionStart = (long)region * RegionSectors;
        int roll = rng.Next(100);
        if (roll < 10)
        {
            long count = rng.Next(1, RegionSectors + 1);
            long sector = regionStart + rng.Next(RegionSectors - (int)count + 1);
            f.PutDiscard(q, id, (ulong)sector, (ulong)count, rng.Next(2) == 0 && secureDiscards ? BlkifDiscardFlags.Secure : (byte)0);
            discards++;
            return new Pending { Op = BlkifOp.Discard, Region = region, Sector = sector, Pages = [], DiscardSectors = count };
        }
        byte op;
        bool indirect = false;
        if (roll < 45) op = BlkifOp.Read;
        else if (roll < 80) op = BlkifOp.Write;
        else if (roll < 90) op = BlkifOp.FlushDiskCache;
        else op = BlkifOp.WriteBarrier;
        if (op is BlkifOp.Read or BlkifOp.Write) indirect = rng.Next(3) == 0;
        int maxSegs = indirect ? 64 : BlkifLimits.MaxSegmentsPerRequest;
        int nseg = op is BlkifOp.FlushDiskCache or BlkifOp.WriteBarrier && rng.Next(3) == 0 ? 0 : rng.Next(1, maxSegs + 1);
        var pages = new List<(uint, uint, BlkifRequestSegment)>(nseg);
        int total = 0;
        for (int i = 0; i < nseg; i++)
        {
            var (frame, gref) = free.Pop();
            byte first = (byte)rng.Next(8);
            byte last = (byte)rng.Next(first, 8);
            var seg = new BlkifRequestSegment { Gref = gref, FirstSect = first, LastSect = last };
            pages.Add((frame, gref, seg));
            total += last - first + 1;
        }
        long start = regionStart + rng.Next(RegionSectors - total + 1);
        var p = new Pending { Op = op, Region = region, Sector = start, Pages = pages };
        if (op != BlkifOp.Read && nseg > 0)
        {
            // The data the guest asked to write, gathered segment by segment.
            p.Data = new byte[total * 512];
            int at = 0;
            foreach (var (frame, _, seg) in pages)
            {
                Span<byte> page = f.Page(frame);
                rng.NextBytes(page);
                int len = (seg.LastSect - seg.FirstSect + 1) * 512;
                page.Slice(seg.FirstSect * 512, len).CopyTo(p.Data.AsSpan(at));
                at += len;
            }
        }
        else if (op == BlkifOp.Read)
        {
            foreach (var (frame, _, _) in pages) f.Page(frame).Fill(0xA5);
        }
        if (op == BlkifOp.Read) reads++;
        else if (op == BlkifOp.Write) writes++;
        else
        {
            flushes++;
            if (nseg > 0) writes++;
        }
        var segs = pages.Select(x => x.Item3).ToArray();
        if (indirect)
        {
            var (ind, indRef) = free.Pop();
            f.WriteIndirectPage(ind, segs);
            f.PutIndirect(q, op, id, (ulong)start, (ushort)nseg, [indRef]);
            p.IndirectFrame = ind;
            p.IndirectGref = indRef;
        }
        else
        {
            f.PutRw(q, op, id, (ulong)start, segs);
        }
        return p;
    }

    private static void Apply(TestBlkfront f, Pending p, byte[] shadow)
    {
        if (p.Op == BlkifOp.Discard)
        {
            shadow.AsSpan((int)(p.Sector * 512), (int)(p.DiscardSectors * 512)).Clear();
            return;
        }
        if (p.Data is not null)
        {
            p.Data.CopyTo(shadow.AsSpan((int)(p.Sector * 512)));
            return;
        }
        if (p.Op != BlkifOp.Read)
            return;
        int at = (int)(p.Sector * 512);
        foreach (var (frame, _, seg) in p.Pages)
        {
            int len = (seg.LastSect - seg.FirstSect + 1) * 512;
            Span<byte> page = f.Page(frame);
            Assert.True(shadow.AsSpan(at, len).SequenceEqual(page.Slice(seg.FirstSect * 512, len)), $"read at byte {at} returned wrong data");
            at += len;
        }
    }
}
