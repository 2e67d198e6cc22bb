using System.Diagnostics;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Hostile;
using Xunit.Abstractions;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// A guest trying to get past its vif's <c>rate</c> (netback's credit scheduler, netback-anchors 4.1
/// row 3: a packet goes when its total size fits the remaining credit, else the queue waits for the
/// next refill of one window's credit, accumulated up to max(128 KiB, credit) so a 64 KiB packet can
/// still go). Whatever the guest does, over any interval Δ the bytes it gets answered are at most
/// P + B x (floor(Δ/W) + 2): what was left before the interval (under B + P, since a refill only
/// happens when a packet did not fit), one refill per window, and one refill at each end. B = 16 000
/// bytes per W = 20 ms (800 kB/s); P is the largest packet of the attack. And it still gets at least
/// a third of the rate (the limiter throttles, it does not starve), the throttled queue thread
/// sleeps on the credit timer instead of polling (CPU under a quarter of the wall time), and the
/// bystander is served throughout.
/// </summary>
public class NetRateLimitAttackTests(ITestOutputHelper output)
{
    private const long CreditBytes = 16_000;
    private const double WindowMs = 20;
    private static readonly TimeSpan Attack = TimeSpan.FromSeconds(2.5);

    public enum Kind
    {
        /// <summary>60 000-byte packets in 15 slots: each needs four windows of credit.</summary>
        HugePackets,
        /// <summary>60-byte packets as fast as the ring takes them.</summary>
        TinyPackets,
        /// <summary>Idle 150 ms (credit "should" pile up), then a full ring of 1 500-byte packets at once.</summary>
        BurstAfterIdle,
        /// <summary>Every packet a different slot count (1-18, zero-length fragments included) and size.</summary>
        ChangingFrags,
    }

    private sealed record Packet(int Slots, int Size);

    private static Packet Put(RawNetfront raw, Kind kind, Random rng, ref ushort id)
    {
        uint head = raw.Data[0].Gref;
        switch (kind)
        {
            case Kind.TinyPackets:
                raw.PutTx(head, 0, 0, id++, 60);
                return new Packet(1, 60);
            case Kind.BurstAfterIdle:
                raw.PutTx(head, 0, 0, id++, 1500);
                return new Packet(1, 1500);
            case Kind.HugePackets:
            {
                const int frags = 14;
                raw.PutTx(head, 0, NetTxFlags.MoreData, id++, 60_000);
                for (int i = 0; i < frags; i++)
                    raw.PutTx(raw.Data[1 + i].Gref, 0, i < frags - 1 ? NetTxFlags.MoreData : (ushort)0, id++, 4000);
                return new Packet(frags + 1, 60_000);
            }
            case Kind.ChangingFrags:
            {
                int frags = rng.Next(0, 18);
                var sizes = Enumerable.Range(0, frags).Select(_ => rng.Next(4) == 0 ? 0 : rng.Next(1, 3501)).ToArray(); // total stays under 64 KiB
                int total = rng.Next(14, 4001) + sizes.Sum();
                raw.PutTx(head, 0, frags > 0 ? NetTxFlags.MoreData : (ushort)0, id++, (ushort)total);
                for (int i = 0; i < frags; i++)
                    raw.PutTx(raw.Data[1 + i].Gref, 0, i < frags - 1 ? NetTxFlags.MoreData : (ushort)0, id++, (ushort)sizes[i]);
                return new Packet(frags + 1, total);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    [Theory]
    [InlineData(Kind.HugePackets)]
    [InlineData(Kind.TinyPackets)]
    [InlineData(Kind.BurstAfterIdle)]
    [InlineData(Kind.ChangingFrags)]
    public async Task Rate_limit_holds_against_a_guest_trying_to_bypass_it(Kind kind)
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        var device = f.AttackerDevice;
        raw.Stage(0, Frames.Raw(4000, NetHostileFixture.TapMac, f.AttackerMac));
        await f.WriteBackendKeyAsync(f.AttackerNic, "rate", $"{CreditBytes},{(int)(WindowMs * 1000)}");
        await Bounded.UntilAsync(() => device.Rate == ((ulong)CreditBytes, (ulong)(WindowMs * 1000)), NetHostileFixture.Bound, "the rate applied");
        string worker = $"netback d{NetHostileFixture.AttackerDomid} q0";

        var samples = new List<(double Ms, long Bytes)>();
        int maxPacket = 0, packets = 0, slots = 0;
        TimeSpan cpu0 = ProcessProbe.ThreadCpu(worker);
        var wall = Stopwatch.StartNew();
        var attack = Task.Run(async () =>
        {
            var rng = new Random((int)kind + 4);
            var inFlight = new Queue<Packet>();
            int answeredSlots = 0;
            long answered = 0;
            ushort id = 0;
            var clock = Stopwatch.StartNew();
            samples.Add((0, 0));
            while (clock.Elapsed < Attack)
            {
                bool idle = kind == Kind.BurstAfterIdle && inFlight.Count == 0 && clock.ElapsedMilliseconds % 300 < 150;
                while (!idle && raw.Tx.FreeRequests >= 19)
                {
                    var p = Put(raw, kind, rng, ref id);
                    inFlight.Enqueue(p);
                    maxPacket = Math.Max(maxPacket, p.Size);
                    packets++;
                    slots += p.Slots;
                }
                raw.PushTx();
                foreach (var r in raw.TakeTxResponses())
                {
                    Assert.Equal(NetifRsp.Okay, r.Status);
                    if (++answeredSlots == inFlight.Peek().Slots)
                    {
                        answered += inFlight.Dequeue().Size;
                        answeredSlots = 0;
                    }
                }
                samples.Add((clock.Elapsed.TotalMilliseconds, answered));
                await Task.Delay(1);
            }
        });
        await f.BystanderDuringAsync(attack);
        TimeSpan cpu = ProcessProbe.ThreadCpu(worker) - cpu0;
        double wallMs = wall.Elapsed.TotalMilliseconds;

        // The bound over every interval between two samples (a sample is taken after the responses it
        // counts, so it can only under-count an interval's end: 5 ms of slack on Δ covers the skew).
        double worst = 0;
        string worstAt = "";
        for (int i = 0; i < samples.Count; i++)
        {
            for (int j = i + 1; j < samples.Count; j++)
            {
                double dt = samples[j].Ms - samples[i].Ms + 5;
                long bound = maxPacket + CreditBytes * ((long)Math.Floor(dt / WindowMs) + 2);
                long bytes = samples[j].Bytes - samples[i].Bytes;
                double ratio = (double)bytes / bound;
                if (ratio > worst)
                {
                    worst = ratio;
                    worstAt = $"{bytes} bytes in {dt - 5:0.0} ms (bound {bound})";
                }
            }
        }
        long total = samples[^1].Bytes;
        double seconds = samples[^1].Ms / 1000;
        double rate = CreditBytes / (WindowMs / 1000);
        output.WriteLine($"{kind}: {packets} packets / {slots} slots queued, {total} bytes answered in {seconds:0.00} s " +
            $"({total / seconds / 1000:0} kB/s, limit {rate / 1000:0} kB/s), worst interval {worst:P0} of its bound ({worstAt}), queue thread CPU {cpu.TotalMilliseconds} ms in {wallMs:0} ms");
        Assert.True(worst <= 1, $"the limit was exceeded: {worstAt}");
        Assert.True(total >= rate * seconds / 3, $"only {total} bytes in {seconds:0.00} s: the limiter starved the guest");
        Assert.True(cpu.TotalMilliseconds < wallMs / 4, $"the throttled queue thread used {cpu.TotalMilliseconds} ms of CPU in {wallMs:0} ms");
        var stats = f.AttackerStats;
        Assert.Equal(0, stats.FatalResets);
        await f.AssertBystanderServedAsync(1);
    }
}
