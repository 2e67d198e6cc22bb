using XenBackends.Native.IO;
using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// The per-request data path of the default configuration allocates nothing once warm. Counted on
/// the queue's worker thread alone (GC.GetAllocatedBytesForCurrentThread, sampled by the worker each
/// time it goes idle), so other tests running in parallel cannot disturb the count.
/// </summary>
public sealed class SteadyStateAllocationTests
{
    /// <summary>
    /// Both data paths allocate nothing per request. The last row is the instrument's own check: an
    /// engine that allocates 64 bytes per request must be seen, or the zero rows would prove nothing.
    /// </summary>
    [Theory]
    [InlineData(BlockDataPath.GrantCopy, false)]
    [InlineData(BlockDataPath.GrantMap, false)]
    [InlineData(BlockDataPath.GrantCopy, true)]
    public async Task EachDataPathAllocatesZeroBytesPerRequestOnceWarm(BlockDataPath path, bool allocatingProbe)
    {
        var options = new BlockBackendOptions { DataPath = path };
        if (allocatingProbe)
            options = options with { IoEngineFactory = capacity => new AllocatingIoEngine(IoEngines.Create(IoEngineKind.Threads, capacity)) };
        await using var h = await BlockHarness.CreateAsync(4 << 20, options);
        var front = await h.ConnectAsync();
        var pages = new uint[11];
        for (int i = 0; i < pages.Length; i++) pages[i] = front.AllocateDataPage().Gref;
        uint indirectFrame;
        (indirectFrame, uint indirectRef) = front.AllocateDataPage();
        var indirectSegments = new BlkifRequestSegment[32];
        for (int i = 0; i < indirectSegments.Length; i++)
            indirectSegments[i] = new BlkifRequestSegment { Gref = pages[i % pages.Length], FirstSect = 0, LastSect = 7 };
        front.WriteIndirectPage(indirectFrame, indirectSegments);
        var random = new Random(5);
        uint produced = 0;

        async Task RoundAsync()
        {
            // A ring's worth of mixed requests: reads and writes of 1..11 segments, an indirect one, a flush.
            for (int k = 0; k < 30; k++)
            {
                int nseg = 1 + random.Next(11);
                var segments = new BlkifRequestSegment[nseg];
                for (int i = 0; i < nseg; i++) segments[i] = new BlkifRequestSegment { Gref = pages[i], FirstSect = 0, LastSect = 7 };
                front.PutRw(0, random.Next(2) == 0 ? BlkifOp.Read : BlkifOp.Write, (ulong)k, (ulong)random.Next(4096) * 8 % (8192 - 96), segments);
            }
            front.PutIndirect(0, BlkifOp.Write, 30, 256, (ushort)indirectSegments.Length, [indirectRef]);
            front.PutRw(0, BlkifOp.FlushDiskCache, 31, 0, []);
            front.Push(0);
            var responses = await front.WaitForResponsesAsync(0, 32);
            Assert.All(responses, r => Assert.Equal(BlkifRsp.Okay, r.Status));
            produced += 32;
        }

        async Task<long> IdleAllocatedAsync()
        {
            // The worker samples its counter just before it sleeps, after pushing the last response.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (true)
            {
                var (responses, allocated) = h.Block.Queues[0].IdleSnapshot;
                if (responses == produced)
                    return allocated;
                Assert.True(DateTime.UtcNow < deadline, $"the worker never went idle after {produced} responses ({responses})");
                await Task.Delay(1);
            }
        }

        for (int i = 0; i < 200; i++)
            await RoundAsync();
        long before = await IdleAllocatedAsync();
        for (int i = 0; i < 200; i++)
            await RoundAsync();
        long after = await IdleAllocatedAsync();

        if (allocatingProbe)
            Assert.True(after - before >= 200 * 32 * 64, $"the probe engine allocated 64 B per request, but only {after - before} bytes were counted over 6400 requests");
        else
            Assert.Equal(0, after - before);
    }

    /// <summary>Delegates to a real engine and allocates 64 bytes per request on the queue's thread.</summary>
    private sealed class AllocatingIoEngine(IIoEngine inner) : IIoEngine
    {
        private byte[]? _last;

        public string Name => inner.Name;
        public int Capacity => inner.Capacity;
        public int InFlight => inner.InFlight;
        public int CompletionFd => inner.CompletionFd;
        public bool CompletesInline => inner.CompletesInline;

        public bool TryEnqueue(in IoRequest request)
        {
            _last = new byte[64 - 24]; // 40 bytes of payload + the array header: 64 bytes on the heap
            GC.KeepAlive(_last);
            return inner.TryEnqueue(request);
        }

        public void Submit() => inner.Submit();
        public int Reap(Span<IoCompletion> completions) => inner.Reap(completions);
        public void WaitForCompletion(int timeoutMilliseconds) => inner.WaitForCompletion(timeoutMilliseconds);
        public void Dispose() => inner.Dispose();
    }
}
