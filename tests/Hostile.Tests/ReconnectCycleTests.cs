using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Blkif;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// A guest that connects, does one I/O and closes in a loop (a reboot loop, or an attacker doing it
/// on purpose): every cycle maps rings, binds event channels, starts queue threads, opens the
/// image or the tap's queue fd, and tears all of that down again. Whatever one cycle leaves
/// behind, a few hundred cycles make a dom0 problem, so the bound is per cycle: after the loop the
/// backend holds what it held before it. (Checked to fail with a queue that kept its eventfd.)
/// </summary>
public class ReconnectCycleTests
{
    private const int Cycles = 30;

    [Fact]
    public async Task A_vif_reconnected_in_a_loop_holds_no_more_fds_threads_mappings_or_waits()
    {
        await using var f = await NetHostileFixture.CreateAsync();
        byte[] frame = Frames.Raw(120, NetHostileFixture.TapMac, f.AttackerMac);
        var raw = await f.ConnectAttackerAsync();
        await SendAsync(raw, frame);
        // One cycle first: whatever the first reconnect creates lazily is not a leak.
        raw = await f.ReconnectAttackerAsync(raw);
        await SendAsync(raw, frame);

        var before = Held.Now(f.Grants.Live);
        for (int i = 0; i < Cycles; i++)
        {
            raw = await f.ReconnectAttackerAsync(raw);
            await SendAsync(raw, frame);
        }

        before.AssertNoMore(f.Grants.Live, f.MostWaitsOnOneSubscription);
        Assert.Equal(1, f.AttackerStats.TxPackets); // counters are the connection's: the frame reached the tap
        await f.AssertBystanderServedAsync(1);
    }

    [Fact]
    public async Task A_vbd_reconnected_in_a_loop_holds_no_more_fds_threads_mappings_or_waits()
    {
        await using var f = await HostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        await WriteAsync(raw, 0);
        raw = await f.ReconnectAttackerAsync(raw);
        await WriteAsync(raw, 0);

        var before = Held.Now(f.Grants.Live);
        for (int i = 0; i < Cycles; i++)
        {
            raw = await f.ReconnectAttackerAsync(raw);
            await WriteAsync(raw, i + 1);
        }

        before.AssertNoMore(f.Grants.Live, f.Backends.Watches.MostWaitsOnOneSubscription);
        await f.AssertBystanderServedAsync(1);
        f.AssertImageUnchangedOutside((0, 8 * (Cycles + 1)));
    }

    private static async Task SendAsync(RawNetfront raw, byte[] frame)
    {
        raw.PutTx(raw.Stage(1, frame), 0, 0, 1, (ushort)frame.Length);
        raw.PushTx();
        Assert.Equal(NetifRsp.Okay, (await raw.WaitTxResponsesAsync(1, NetHostileFixture.Bound)).Single().Status);
    }

    // One page to sector 8 * n: each cycle's write lands where the image check expects it.
    private static async Task WriteAsync(RawBlkfront raw, int n)
    {
        var (gref, frame) = raw.GrantPage();
        raw.Memory.Page(frame).Fill((byte)(n + 1));
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, 1, (ulong)(8 * n), new RawSegment(gref, 0, 7)));
        raw.Push();
        Assert.Equal(BlkifRsp.Okay, (await raw.WaitResponsesAsync(1, HostileFixture.Bound)).Single().Status);
    }

    /// <summary>What the process holds before the loop (fds, own threads, grant mappings, heap): the loop may add nothing lasting.</summary>
    private sealed record Held(Dictionary<string, string> Fds, string[] Threads, int Maps, long Heap)
    {
        public static Held Now(int maps) => new(ProcessProbe.FdTargets(), OwnThreads(), maps, ProcessProbe.HeapAfterFullGc());

        public void AssertNoMore(int maps, int mostWaitsOnOneSubscription)
        {
            Assert.InRange(maps, 0, Maps);
            ProcessProbe.AssertFdsBounded(Fds, 4);
            Assert.Equal(Threads, OwnThreads());
            Assert.InRange(mostWaitsOnOneSubscription, 0, 1);
            Assert.InRange(ProcessProbe.HeapAfterFullGc(), 0, Heap + (8L << 20));
        }
    }

    // The backend's own threads (queue threads, bridge watches, I/O threads); the runtime's pool and
    // io_uring's kernel workers (iou-wrk-*) come and go by themselves.
    private static string[] OwnThreads() => Directory.GetDirectories("/proc/self/task")
        .Select(t => { try { return File.ReadAllText(Path.Combine(t, "comm")).Trim(); } catch (IOException) { return ".NET gone"; } })
        .Where(n => !n.StartsWith(".NET", StringComparison.Ordinal) && !n.StartsWith("iou-wrk", StringComparison.Ordinal) && n != "dotnet").Order().ToArray();
}
