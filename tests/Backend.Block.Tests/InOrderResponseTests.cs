using XenBackends.Native.IO;
using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// Regression for acknowledged writes lost across a worker restart (found by the SIGKILL
/// crash-consistency run in Service.Tests). In blkif a request and its response share a ring slot
/// (a union in blkif.h), and a restarted worker resumes at the shared rsp_prod, serving every
/// request after it again. A response published out of order, for a later request while an
/// earlier one is still in the engine, lands in the earlier request's slot: after a restart that
/// request is lost for good and the answered one is replayed. So responses go out in the order the
/// requests were consumed. Deterministic: an engine that never completes the first request plays
/// the slow one, and a disconnect that abandons it plays the kill.
/// </summary>
public sealed class InOrderResponseTests
{
    private const long StuckOffset = 0;

    [Fact]
    public async Task AResponseWaitsForEarlierRequestsSoAWorkerResumingAtTheSharedRspProdServesEveryUnansweredRequest()
    {
        var engines = new List<ScriptedIoEngine>();
        var options = new BlockBackendOptions
        {
            DrainTimeout = TimeSpan.FromMilliseconds(200),
            IoEngineFactory = capacity =>
            {
                // The first worker's write at sector 0 never completes; everything else (and the
                // whole second worker) completes at once.
                bool first = engines.Count == 0;
                var engine = new ScriptedIoEngine(capacity, r =>
                    first && r.Offset == StuckOffset ? null : r.Op is IoOp.ReadVector or IoOp.WriteVector ? 4096 : 0);
                engines.Add(engine);
                return engine;
            },
        };
        await using var h = await BlockHarness.CreateAsync(1 << 20, options);
        var front = await h.ConnectAsync();
        var (_, g1) = front.AllocateDataPage();
        var (_, g2) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Write, 1, 0, [new BlkifRequestSegment { Gref = g1, FirstSect = 0, LastSect = 7 }]);
        front.PutRw(0, BlkifOp.Write, 2, 8, [new BlkifRequestSegment { Gref = g2, FirstSect = 0, LastSect = 7 }]);
        front.Push(0);

        // Both writes reached the engine, the second has completed and been reaped.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!(engines[0].Requests.Count == 2 && engines[0].InFlight == 1) && DateTime.UtcNow < deadline)
            await Task.Delay(5);
        Assert.Equal(2, engines[0].Requests.Count);
        Assert.Equal(1, engines[0].InFlight);

        // The worker dies with request 1 unanswered (abandoned, as a SIGKILL leaves it).
        await h.Block.DisconnectAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        var responses = new List<TestBlkfront.Response>();
        front.TakeResponses(0, responses);
        // Request 2's answer would sit in request 1's slot: it must not have been published.
        Assert.Empty(responses);

        // A new worker meets the same ring (same refs, same indexes) and resumes at the shared rsp_prod.
        await front.WriteKeysAsync(h.Store, BlockHarness.Path.ExpectedFrontend);
        await h.Block.ConnectAsync(h.Device, CancellationToken.None);
        responses.AddRange(await front.WaitForResponsesAsync(0, 2, TimeSpan.FromSeconds(10)));
        // Nothing more: no answered request is replayed twice.
        await Task.Delay(50);
        front.TakeResponses(0, responses);

        Assert.Equal(
            [new TestBlkfront.Response(1, BlkifOp.Write, BlkifRsp.Okay), new TestBlkfront.Response(2, BlkifOp.Write, BlkifRsp.Okay)],
            responses.OrderBy(r => r.Id));
        Assert.Equal(2, engines[1].Requests.Count);
        await h.Block.DisconnectAsync(CancellationToken.None);
    }
}
