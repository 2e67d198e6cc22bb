using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-332 / CVE-2020-27673: a guest sending events at a high rate could keep dom0 busy; netback
/// moved to lateeoi (delivery re-enabled only after the rings were served, spurious events delayed)
/// and user-space event channels followed (netback-anchors 4.1 "Busy-looping / event storms").
/// Here: split tx and rx channels plus the control channel, all stormed with nothing on any ring.
/// </summary>
public class NetXsa332EventStormTests
{
    private const int Storm = 200_000;
    private const int Requests = 2_000;

    /// <summary>
    /// Bound, as in the block XSA-332 test: the queue thread's CPU during a storm of N = 200 000 kicks
    /// per channel must stay below a quarter of the CPU it needs to serve N real tx requests (N x the
    /// per-request cost measured on 2 000 one-slot frames just before), plus 100 ms of slack for
    /// /proc's 10 ms ticks. The control thread gets the same bound against the same per-request cost
    /// (it does strictly less work per event than a data pass). A backend doing a ring pass per
    /// kick would blow through it; one that masks the port while it drains pays one wakeup per drain.
    /// </summary>
    [Fact]
    public async Task XSA_332_event_storm_on_tx_rx_and_ctrl_channels_does_not_busy_loop_the_queue_thread()
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync(split: true, ctrl: true);
        string worker = $"netback d{NetHostileFixture.AttackerDomid} q0";
        string ctrlWorker = $"netback d{NetHostileFixture.AttackerDomid} ctrl";
        byte[] frame = Frames.Raw(60, NetHostileFixture.TapMac, f.AttackerMac);
        uint gref = raw.Stage(0, frame);

        TimeSpan before = ProcessProbe.ThreadCpu(worker);
        for (int done = 0; done < Requests;)
        {
            int n = Math.Min(128, Requests - done);
            for (int i = 0; i < n; i++)
                raw.PutTx(gref, 0, 0, (ushort)i, 60);
            raw.PushTx();
            var rsps = await raw.WaitTxResponsesAsync(n, NetHostileFixture.Bound);
            Assert.All(rsps, r => Assert.Equal(NetifRsp.Okay, r.Status));
            done += n;
        }
        TimeSpan served = ProcessProbe.ThreadCpu(worker) - before;
        double perRequest = Math.Max(served.TotalMilliseconds, 10) / Requests;

        TimeSpan stormStart = ProcessProbe.ThreadCpu(worker);
        TimeSpan ctrlStart = ProcessProbe.ThreadCpu(ctrlWorker);
        var storm = Task.WhenAll(
            Task.Run(() => raw.Storm(raw.TxPort, Storm)),
            Task.Run(() => raw.Storm(raw.RxPort, Storm)),
            Task.Run(() => raw.Storm(raw.CtrlPort, Storm)));
        await f.BystanderDuringAsync(storm);
        // One real frame after the storm: the thread has caught up with every kick before we read its CPU.
        raw.PutTx(gref, 0, 0, 9, 60);
        raw.PushTx();
        Assert.Equal(NetifRsp.Okay, (await raw.WaitTxResponsesAsync(1, NetHostileFixture.Bound)).Single().Status);
        Assert.Equal(NetifCtrlStatus.Success, (await raw.CtrlAsync(NetifCtrlType.SetHashAlgorithm, NetifCtrlHashAlgorithm.None, 0, 0, NetHostileFixture.Bound)).Status);
        TimeSpan stormCpu = ProcessProbe.ThreadCpu(worker) - stormStart;
        TimeSpan ctrlCpu = ProcessProbe.ThreadCpu(ctrlWorker) - ctrlStart;

        double bound = Storm * perRequest / 4 + 100;
        Assert.True(stormCpu.TotalMilliseconds < bound,
            $"storm of {Storm} kicks on tx and rx cost the queue thread {stormCpu.TotalMilliseconds} ms; bound {bound:0} ms ({perRequest * 1000:0.0} us per real request)");
        Assert.True(ctrlCpu.TotalMilliseconds < bound,
            $"storm of {Storm} kicks on ctrl cost the ctrl thread {ctrlCpu.TotalMilliseconds} ms; bound {bound:0} ms");
        Assert.Equal(0u, raw.TxUnread);
        Assert.Equal(0, f.AttackerStats.FatalResets);
    }
}
