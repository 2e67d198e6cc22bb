using System.Diagnostics;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Hostile;
using XenBackends.Xenbus;
using Xunit.Abstractions;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-90 / CVE-2014-2580: a malicious guest's fatal error made netback disable the vif from its
/// NAPI (softirq) context, which took a mutex there and crashed dom0; the fix deferred the disable to
/// queue 0's kthread (netback-anchors 4.2). The trigger here: a fatal chain on any one queue of a
/// three-queue vif while every queue carries traffic both ways. The disable must come from the
/// faulting queue's own thread without waiting on the others (no self-join, no lock held across the
/// teardown): error node and Closing within the bound, the frontend's close completes (the
/// teardown joined every queue thread), the process and the bystander are unharmed, and a fresh
/// connection gets all three queues back.
/// </summary>
public class NetXsa90FatalUnderLoadTests(ITestOutputHelper output)
{
    private const int Queues = 3;

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task XSA_90_fatal_error_on_one_queue_under_traffic_on_all_disables_the_vif_without_deadlock(int faulting)
    {
        await using var f = await NetHostileFixture.CreateAsync(maxQueues: Queues);
        var (queues, _) = await f.ConnectMultiQueueAttackerAsync(Queues, ctrl: false);
        foreach (var q in queues)
            q.PostRx(64);

        using var stop = new CancellationTokenSource();
        using var stopFaulting = new CancellationTokenSource();
        var sent = new long[Queues];
        var traffic = Enumerable.Range(0, Queues).Select(qi => Task.Run(() =>
        {
            var q = queues[qi];
            var mine = qi == faulting ? stopFaulting.Token : CancellationToken.None;
            // Until the vif is down (or this is the faulting queue and the test takes its ring over).
            while (!stop.IsCancellationRequested && !mine.IsCancellationRequested && f.AttackerDevice.LastFatalError is null)
            {
                // Fire and forget: after the fatal, nothing is answered any more.
                if (q.Tx.FreeRequests > 2)
                {
                    q.QueueFrame(Frames.Raw(200, Frames.TapMac, f.AttackerMac, seed: (byte)qi));
                    q.Push();
                    sent[qi]++;
                }
                while (q.Tx.TryConsumeResponse(out NetifTxResponse _) == Rings.RingRead.Item)
                {
                }
                // Bounded: under the injector's flood there is always another packet, and an unbounded
                // drain starved this queue's TX (10 packets in 20 s against 160k received).
                for (int n = 0; n < 64 && q.Receive(timeoutMs: 1) is { } got; n++)
                    q.PostRx(got.Slots);
            }
        })).ToArray();
        long injected = 0;
        var inject = Task.Run(() =>
        {
            using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
            for (ushort flow = 0; !stop.IsCancellationRequested; flow++)
            {
                wire.Send(Frames.Tcp4(f.AttackerMac, Frames.TapMac, Frames.HostIp, Frames.GuestIp, (ushort)(20000 + flow % 4000), 80, 1, Frames.Payload(200), Frames.Csum.Full));
                injected++;
                if (flow % 32 == 0)
                    Thread.Sleep(1);
            }
        });
        try
        {
            // Traffic on every queue, both ways, first.
            await Bounded.UntilAsync(() => f.AttackerDevice.Counters.All(c => c.Snapshot() is { TxPackets: > 10, RxPackets: > 10 }),
                NetHostileFixture.Bound,
                () => "traffic on every queue both ways (tx/rx/rxdrops per queue: "
                + string.Join(", ", f.AttackerDevice.Counters.Select(c => c.Snapshot()).Select(c => $"{c.TxPackets}/{c.RxPackets}/{c.RxDrops}"))
                + $"; injected {Interlocked.Read(ref injected)}, injector {inject.Status} {inject.Exception?.InnerException?.Message}"
                + $", traffic {string.Join("/", traffic.Select(t => t.Status))} {traffic.FirstOrDefault(t => t.IsFaulted)?.Exception?.InnerException?.Message}"
                + $", fatal: {f.AttackerDevice.LastFatalError ?? "none"})");

            // The fatal chain, a fragment crossing its page (4.1 row 11), on the faulting queue only, while
            // the other queues and the tap side keep going.
            await stopFaulting.CancelAsync();
            await traffic[faulting];
            var bad = queues[faulting];
            uint gref = bad.StageTxData(Frames.Raw(300, Frames.TapMac, f.AttackerMac));
            var clock = Stopwatch.StartNew();
            bad.PutTx(gref, 0, NetTxFlags.MoreData, 300);
            bad.PutTx(gref, 4000, 0, 200);
            bad.Push();
            await f.AssertAttackerFatalAsync("Cross page boundary");
            TimeSpan toClosing = clock.Elapsed;
            await Task.WhenAll(traffic).WaitAsync(NetHostileFixture.Bound);
            Assert.Contains($"queue {faulting}:", f.AttackerDevice.LastFatalError);
            Assert.Equal(1, f.AttackerDevice.Counters.Sum(c => c.Snapshot().FatalResets));
            await f.AssertBystanderServedAsync(0);

            // The frontend closes: the backend tears every queue down (joining their threads) and reaches Closed.
            await f.CloseAttackerFrontendAsync();
            TimeSpan toClosed = clock.Elapsed;
            Assert.Empty(f.AttackerDevice.Counters);
            await stop.CancelAsync();
            await inject.WaitAsync(NetHostileFixture.Bound);

            var (fresh, _) = await f.ConnectMultiQueueAttackerAsync(Queues, ctrl: false);
            for (int qi = 0; qi < Queues; qi++)
            {
                fresh[qi].QueueFrame(Frames.Raw(90, Frames.TapMac, f.AttackerMac));
                fresh[qi].Push();
                Assert.Equal(NetifRsp.Okay, fresh[qi].WaitTxResponses(1, 20_000)[0].Status);
            }
            Assert.Null(f.AttackerDevice.LastFatalError);
            await f.AssertBystanderServedAsync(1);
            output.WriteLine($"XSA-90 queue {faulting}: sent {string.Join('/', sent)}, injected {injected}; Closing after {toClosing.TotalMilliseconds:0} ms, Closed after {toClosed.TotalMilliseconds:0} ms");
        }
        finally
        {
            // The traffic tasks read the guest's rings; if an assertion above ends the test early they
            // must be stopped before the fixture unmaps that memory, or they fault on it.
            await stop.CancelAsync();
            await Task.WhenAll([.. traffic, inject]).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }
}
