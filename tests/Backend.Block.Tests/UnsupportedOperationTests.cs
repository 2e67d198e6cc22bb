using XenBackends.Native.IO;
using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// A filesystem that cannot discard or flush (EOPNOTSUPP from fallocate or fdatasync) must look to
/// the guest like a missing feature, not a failing disk: a migrated guest re-issues what its old
/// backend supported, and blkfront disables a feature on EOPNOTSUPP but fails I/O on ERROR.
/// </summary>
public sealed class UnsupportedOperationTests
{
    private const int EOpNotSupp = 95, EIO = 5;


    private static BlockBackendOptions Scripted(Func<IoRequest, int?> script, List<ScriptedIoEngine> engines) => new()
    {
        IoEngineFactory = capacity =>
        {
            var engine = new ScriptedIoEngine(capacity, script);
            lock (engines) engines.Add(engine);
            return engine;
        },
    };

    private static async Task<string?> WaitForKeyAsync(BlockHarness h, string key, string expected)
    {
        // The feature key is rewritten from the thread pool; allow it a generous while to land.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        string? value;
        while ((value = await h.ReadBackendAsync(key)) != expected && DateTime.UtcNow < deadline)
            await Task.Delay(10);
        return value;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(BlkifDiscardFlags.Secure)]
    public async Task DiscardTheFilesystemRefusesIsEopnotsuppThenWithdrawnNowAndOnReconnect(byte flag)
    {
        var engines = new List<ScriptedIoEngine>();
        var options = Scripted(r => r.Op is IoOp.PunchHole or IoOp.ZeroRange ? -EOpNotSupp : (int)r.Length, engines);
        await using var h = await BlockHarness.CreateAsync(1 << 20, options);
        var front = await h.ConnectAsync();
        Assert.Equal("1", await h.ReadBackendAsync("feature-discard"));

        front.PutDiscard(0, 1, 0, 8, flag);
        Assert.Equal(new TestBlkfront.Response(1, BlkifOp.Discard, BlkifRsp.EOpNotSupp), await front.RoundTripAsync(0));
        Assert.Equal("0", await WaitForKeyAsync(h, "feature-discard", "0"));

        // Withdrawn: a guest that asks again is answered without another trip to the filesystem.
        front.PutDiscard(0, 2, 8, 8, flag);
        Assert.Equal(new TestBlkfront.Response(2, BlkifOp.Discard, BlkifRsp.EOpNotSupp), await front.RoundTripAsync(0));
        Assert.Single(engines[0].Requests, op => op is IoOp.PunchHole or IoOp.ZeroRange);
        Assert.Equal(2, h.Block.Statistics.NotSupportedResponses);
        Assert.Equal(0, h.Block.Statistics.ErrorResponses);

        // A new connection (a guest after migration or reboot) is never offered discard again.
        await h.Block.DisconnectAsync(CancellationToken.None);
        await h.Store.WriteAsync(BlockHarness.Path.Backend + "/feature-discard", "1");
        var again = TestBlkfront.Create(h.Guest, BlkifAbi.X86_64, 0, 1);
        await again.WriteKeysAsync(h.Store, BlockHarness.Path.ExpectedFrontend);
        await h.Block.ConnectAsync(h.Device, CancellationToken.None);
        Assert.Equal("0", await h.ReadBackendAsync("feature-discard"));
    }

    [Fact]
    public async Task DiscardThatFailsWithAnIoErrorIsStillAnErrorAndKeepsTheFeature()
    {
        var engines = new List<ScriptedIoEngine>();
        await using var h = await BlockHarness.CreateAsync(1 << 20, Scripted(r => r.Op == IoOp.PunchHole ? -EIO : (int)r.Length, engines));
        var front = await h.ConnectAsync();
        front.PutDiscard(0, 1, 0, 8);
        Assert.Equal(new TestBlkfront.Response(1, BlkifOp.Discard, BlkifRsp.Error), await front.RoundTripAsync(0));
        front.PutDiscard(0, 2, 0, 8);
        Assert.Equal(new TestBlkfront.Response(2, BlkifOp.Discard, BlkifRsp.Error), await front.RoundTripAsync(0));
        // Both went to the filesystem: an I/O error is not a missing feature.
        Assert.Equal(2, engines[0].Requests.Count(op => op == IoOp.PunchHole));
        Assert.Equal("1", await h.ReadBackendAsync("feature-discard"));
    }

    [Theory]
    [InlineData(BlkifOp.FlushDiskCache)]
    [InlineData(BlkifOp.WriteBarrier)]
    public async Task FlushTheFilesystemRefusesIsEopnotsuppAndWithdrawsFlushAndBarrier(byte op)
    {
        var engines = new List<ScriptedIoEngine>();
        await using var h = await BlockHarness.CreateAsync(1 << 20, Scripted(r => r.Op == IoOp.Flush ? -EOpNotSupp : 4096, engines));
        var front = await h.ConnectAsync();
        Assert.Equal("1", await h.ReadBackendAsync("feature-flush-cache"));
        Assert.Equal("1", await h.ReadBackendAsync("feature-barrier"));

        front.PutRw(0, op, 1, 0, []);
        Assert.Equal(new TestBlkfront.Response(1, op, BlkifRsp.EOpNotSupp), await front.RoundTripAsync(0));
        Assert.Equal("0", await WaitForKeyAsync(h, "feature-flush-cache", "0"));
        Assert.Equal("0", await WaitForKeyAsync(h, "feature-barrier", "0"));

        // Later flushes are answered at once; plain writes are unaffected.
        var (_, gref) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.FlushDiskCache, 2, 0, [new BlkifRequestSegment { Gref = gref, FirstSect = 0, LastSect = 7 }]);
        Assert.Equal(new TestBlkfront.Response(2, BlkifOp.FlushDiskCache, BlkifRsp.EOpNotSupp), await front.RoundTripAsync(0));
        front.PutRw(0, BlkifOp.Write, 3, 0, [new BlkifRequestSegment { Gref = gref, FirstSect = 0, LastSect = 7 }]);
        Assert.Equal(new TestBlkfront.Response(3, BlkifOp.Write, BlkifRsp.Okay), await front.RoundTripAsync(0));
        Assert.Single(engines[0].Requests, o => o == IoOp.Flush);
        Assert.Equal(0, h.Block.Statistics.ErrorResponses);
    }
}
