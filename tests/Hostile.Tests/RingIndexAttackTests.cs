using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// Producer-index attacks (blkback-anchors §4 item 1, RING_REQUEST_PROD_OVERFLOW): an index that
/// claims more requests than slots halts the ring and reports the device fatal; nothing else breaks.
/// </summary>
public class RingIndexAttackTests
{
    [Theory]
    [InlineData(33u)]          // one past a full 32-slot ring
    [InlineData(100_000u)]     // far ahead
    [InlineData(0xFFFF_FFF0u)] // "behind": req_prod before rsp_prod, i.e. wrapped
    [InlineData(uint.MaxValue)]
    public async Task Bogus_producer_index_halts_the_ring_as_fatal_and_harms_nobody_else(uint reqProd)
    {
        await using var f = await HostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        Assert.Equal(32u, raw.Ring.Size);
        for (int i = 0; i < raw.Ring.Size; i++)
            raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, (ulong)i, 0, new RawSegment(12345, 0, 7)));
        raw.PushRaw(reqProd);

        await f.AssertFatalAsync(raw);
        Assert.Equal(0u, raw.Ring.RspProd);
        Assert.True(f.Backends.IsServing(f.AttackerDisk.Path), "the attacker's lifecycle died instead of reporting");
        await f.AssertBystanderServedAsync(1);
        f.AssertImageUnchangedOutside();
        // The guest can recover by reconnecting, and is served again.
        raw = await f.ReconnectAttackerAsync(raw);
        var (gref, frame) = raw.GrantPage();
        raw.Memory.Page(frame).Fill(0x5A);
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, 1, 8, new RawSegment(gref, 0, 7)));
        raw.Push();
        Assert.Equal(BlkifRsp.Okay, (await raw.WaitResponsesAsync(1, HostileFixture.Bound))[0].Status);
        f.AssertImageUnchangedOutside((8, 8));
    }

    /// <summary>
    /// A guest that never reads its responses and keeps refilling the ring right up to the limit
    /// (req_prod = rsp_prod + size, legal) for many rounds: every request is answered, memory and fds
    /// stay bounded. Bounds: +64 MiB GC heap and +16 fds, generous against a per-round leak of even
    /// one fd or one 4 KiB buffer over 200 rounds x 32 requests (6400 leaks would show).
    /// </summary>
    [Fact]
    public async Task Never_consuming_responses_for_thousands_of_requests_keeps_memory_and_fds_bounded()
    {
        await using var f = await HostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        var (gref, frame) = raw.GrantPage();
        raw.Memory.Page(frame).Fill(0xA5);
        // Warm up (thread pool, engines, JIT) before the baseline.
        await RoundsAsync(raw, gref, 10);
        var fds = ProcessProbe.FdTargets();
        long heap = ProcessProbe.HeapAfterFullGc();

        var attack = RoundsAsync(raw, gref, 200);
        await f.BystanderDuringAsync(attack);

        ProcessProbe.AssertFdsBounded(fds, 16);
        Assert.InRange(ProcessProbe.HeapAfterFullGc(), 0, heap + (64L << 20));
        f.AssertImageUnchangedOutside((0, 64));
    }

    private static async Task RoundsAsync(RawBlkfront raw, uint gref, int rounds)
    {
        for (int r = 0; r < rounds; r++)
        {
            uint start = raw.ReqProdPvt;
            for (int i = 0; i < raw.Ring.Size; i++)
                raw.Put(RawBlkifRequest.Direct(i % 2 == 0 ? BlkifOp.Write : BlkifOp.Read, (ulong)i, (ulong)(i % 8) * 8, new RawSegment(gref, 0, 7)));
            raw.Push();
            // Only rsp_prod is watched; the responses themselves are never consumed.
            await Bounded.UntilAsync(() => raw.Ring.RspProd == start + raw.Ring.Size, HostileFixture.Bound, "a ring of responses");
        }
    }
}
