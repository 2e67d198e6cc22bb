using XenBackends.Native.IO;
using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// Regression for what the block-ring fuzz target found with its first seed (fuzz/corpus/block-ring/
/// seed-flush-barrier-*): an empty FLUSH_DISKCACHE, which Linux blkfront sends for every
/// REQ_PREFLUSH, was followed by a pwritev of zero iovecs once the flush finished. The flush alone
/// must be the whole request.
/// </summary>
public sealed class EmptyFlushTests
{
    [Fact]
    public async Task EmptyFlushIsOneFdatasyncAndNothingElse()
    {
        var engines = new List<ScriptedIoEngine>();
        var options = new BlockBackendOptions
        {
            IoEngineFactory = capacity =>
            {
                var engine = new ScriptedIoEngine(capacity, r => r.Op is IoOp.ReadVector or IoOp.WriteVector ? (int)r.Length * 4096 : 0);
                lock (engines) engines.Add(engine);
                return engine;
            },
        };
        await using var h = await BlockHarness.CreateAsync(1 << 20, options);
        var front = await h.ConnectAsync();

        // blk_rq_init's sector_number for an empty flush is (sector_t)-1.
        front.PutRw(0, BlkifOp.FlushDiskCache, 1, ulong.MaxValue, []);
        Assert.Equal(new TestBlkfront.Response(1, BlkifOp.FlushDiskCache, BlkifRsp.Okay), await front.RoundTripAsync(0));

        // A flush with data is still flush, then write.
        var (_, gref) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.FlushDiskCache, 2, 0, [new BlkifRequestSegment { Gref = gref, FirstSect = 0, LastSect = 7 }]);
        Assert.Equal(new TestBlkfront.Response(2, BlkifOp.FlushDiskCache, BlkifRsp.Okay), await front.RoundTripAsync(0));

        List<IoOp> seen;
        lock (engines[0].Requests) seen = [.. engines[0].Requests];
        Assert.Equal([IoOp.Flush, IoOp.Flush, IoOp.WriteVector], seen);
    }
}
