using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-349 / CVE-2020-29568, "Frontends can trigger OOM in Backends by update a watched path": each
/// write to a node the backend watches queues a watch event; a backend that queues them without
/// bound runs out of memory. Ours coalesces them into one flag per subscription (WatchRouter).
/// </summary>
public class Xsa349WatchStormTests
{
    private const int Writes = 20_000;

    /// <summary>
    /// Bound: +64 MiB GC heap after the storm. An unbounded queue of 20 000 events (path + token
    /// strings, channel nodes: a few hundred bytes each) stays below that, so the heap bound alone
    /// would not catch it; the test also checks the backend kept up: the device is still Connected,
    /// still serves I/O, and the state it acted on is the last one written.
    /// Nor would it catch a wait left queued per event (~330 bytes each): the waits outstanding on
    /// each watch are counted directly.
    /// </summary>
    [Fact]
    public async Task XSA_349_watch_storm_on_the_frontend_state_is_coalesced_and_the_device_keeps_serving()
    {
        await using var f = await HostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        long heap = ProcessProbe.HeapAfterFullGc();
        var fds = ProcessProbe.FdTargets();
        await using var xs = await f.Attacker.OpenXenStoreAsync();

        // Rewrite the watched state node with its current value (Connected) and an unrelated
        // sibling in the same directory the backend reads, as fast as xenstored accepts.
        var storm = Task.WhenAll(
            XenstoreAttacks.WatchStormAsync(xs, raw.FrontendPath + "/state", Writes, _ => "4"),
            XenstoreAttacks.WatchStormAsync(xs, raw.FrontendPath + "/feature-persistent", Writes / 4, i => (i % 2).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        await f.BystanderDuringAsync(storm);

        Assert.Equal(4, await raw.ReadBackendStateAsync());
        var (gref, frame) = raw.GrantPage();
        raw.Memory.Page(frame).Fill(0x77);
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, 1, 64, new RawSegment(gref, 0, 7)));
        raw.Push();
        Assert.Equal(BlkifRsp.Okay, (await raw.WaitResponsesAsync(1, HostileFixture.Bound)).Single().Status);
        Assert.InRange(ProcessProbe.HeapAfterFullGc(), 0, heap + (64L << 20));
        ProcessProbe.AssertFdsBounded(fds, 16);
        Assert.True(f.Backends.IsServing(f.AttackerDisk.Path));
        Assert.InRange(f.Backends.Watches.MostWaitsOnOneSubscription, 0, 1);
        f.AssertImageUnchangedOutside((64, 8));
    }
}
