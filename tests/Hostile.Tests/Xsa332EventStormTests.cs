using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-332 / CVE-2020-27673: a guest sending events at a high rate could keep dom0 busy; the fix
/// (lateeoi) only re-enables delivery after the backend drained the ring, and treats events with
/// no work as spurious. Here: a storm of notifications with nothing new on the ring.
/// </summary>
public class Xsa332EventStormTests
{
    private const int Storm = 200_000;
    private const int Requests = 2_000;

    /// <summary>
    /// Bound: the worker's CPU during a storm of N = 200 000 kicks must stay below a quarter of the
    /// CPU it needs to serve N real requests (N x the per-request cost measured on 2 000 one-sector
    /// reads just before), plus one 100 ms scheduler slack for tick granularity (/proc counts in
    /// 10 ms ticks). A backend doing a full ring drain per kick would exceed it by far; one that
    /// masks the port while it drains pays one cheap wakeup per drain at most.
    /// </summary>
    [Fact]
    public async Task XSA_332_event_storm_without_requests_does_not_busy_loop_the_worker()
    {
        await using var f = await HostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        string worker = $"blkif-d{HostileFixture.AttackerDomid}-q0";
        var (gref, _) = raw.GrantPage();

        TimeSpan before = ProcessProbe.ThreadCpu(worker);
        for (int done = 0; done < Requests;)
        {
            int n = (int)Math.Min(raw.Ring.Size, Requests - done);
            for (int i = 0; i < n; i++)
                raw.Put(RawBlkifRequest.Direct(BlkifOp.Read, (ulong)i, (ulong)i * 8, new RawSegment(gref, 0, 0)));
            raw.Push();
            var rsps = await raw.WaitResponsesAsync(n, HostileFixture.Bound);
            Assert.All(rsps, r => Assert.Equal(BlkifRsp.Okay, r.Status));
            done += n;
        }
        TimeSpan served = ProcessProbe.ThreadCpu(worker) - before;
        // At least one tick, so a very fast machine cannot make the bound zero.
        double perRequest = Math.Max(served.TotalMilliseconds, 10) / Requests;

        TimeSpan stormStart = ProcessProbe.ThreadCpu(worker);
        var storm = Task.Run(() => raw.Storm(Storm));
        await f.BystanderDuringAsync(storm);
        // Let the worker finish whatever the last kicks woke it for before reading its CPU time.
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Read, 9, 0, new RawSegment(gref, 0, 0)));
        raw.Push();
        Assert.Equal(BlkifRsp.Okay, (await raw.WaitResponsesAsync(1, HostileFixture.Bound)).Single().Status);
        TimeSpan stormCpu = ProcessProbe.ThreadCpu(worker) - stormStart;

        double bound = Storm * perRequest / 4 + 100;
        Assert.True(stormCpu.TotalMilliseconds < bound,
            $"storm of {Storm} kicks cost the worker {stormCpu.TotalMilliseconds} ms; bound {bound:0} ms ({perRequest * 1000:0.0} us per real request)");
        Assert.Equal(0u, raw.Unread);
        f.AssertImageUnchangedOutside();
    }
}
