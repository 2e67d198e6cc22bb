using XenBackends.Native.IO;
using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// An image whose I/O never completes (dead NFS server, suspended dm target), played by an engine
/// that accepts requests and never answers: disconnect must give up after DrainTimeout, leave the
/// memory the kernel could still write into alone, and the process must go on serving.
/// </summary>
public sealed class HungImageTests
{
    [Fact]
    public async Task DisconnectAbandonsIoThatNeverCompletesAfterTheDrainTimeoutAndTheDeviceServesAgain()
    {
        var engines = new List<ScriptedIoEngine>();
        var options = new BlockBackendOptions
        {
            DrainTimeout = TimeSpan.FromMilliseconds(200),
            IoEngineFactory = capacity =>
            {
                // The first connection's image is dead; the one after it works again.
                bool dead = engines.Count == 0;
                var engine = new ScriptedIoEngine(capacity, r => dead ? null : r.Op is IoOp.ReadVector or IoOp.WriteVector ? 4096 : 0);
                engines.Add(engine);
                return engine;
            },
        };
        await using var h = await BlockHarness.CreateAsync(1 << 20, options);
        var front = await h.ConnectAsync();
        var (_, gref) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Read, 1, 0, [new BlkifRequestSegment { Gref = gref, FirstSect = 0, LastSect = 7 }]);
        front.Push(0);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (engines[0].Hung == 0 && DateTime.UtcNow < deadline)
            await Task.Delay(5);
        Assert.Equal(1, engines[0].Hung);
        BlockQueue queue = h.Block.Queues[0];

        // The default DrainTimeout (30 s) + join slack would far exceed this bound: only the configured
        // 200 ms drain lets Disconnect return inside it.
        await h.Block.DisconnectAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.True(queue.Finished);
        Assert.True(queue.AbandonedInFlightIo);
        Assert.Contains("abandoned", queue.FaultReason);
        // The kernel might still complete into the abandoned buffers, so the engine is never disposed.
        Assert.False(engines[0].Disposed);
        Assert.Empty(h.Block.Queues);
        var none = new List<TestBlkfront.Response>();
        Assert.Equal(0, front.TakeResponses(0, none));

        // The service is still up: the guest reconnects and is served by a fresh queue.
        var again = TestBlkfront.Create(h.Guest, BlkifAbi.X86_64, 0, 1);
        await again.WriteKeysAsync(h.Store, BlockHarness.Path.ExpectedFrontend);
        await h.Block.ConnectAsync(h.Device, CancellationToken.None);
        var (_, gref2) = again.AllocateDataPage();
        again.PutRw(0, BlkifOp.Write, 2, 0, [new BlkifRequestSegment { Gref = gref2, FirstSect = 0, LastSect = 7 }]);
        Assert.Equal(new TestBlkfront.Response(2, BlkifOp.Write, BlkifRsp.Okay), await again.RoundTripAsync(0));
        await h.Block.DisconnectAsync(CancellationToken.None);
        Assert.True(engines[1].Disposed);
    }
}
