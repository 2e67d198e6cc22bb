using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Tests;

/// <summary>
/// Guest-RX coalescing (NetQueueOptions.RxCoalesceTime) through a real tap: while frames keep
/// arriving the tap is read on a timer, but kicks are still served at once and a frame that arrives
/// after the stream has stopped is not held back. A long coalescing time makes each rule visible
/// against scheduling noise: every bound below is at least a quarter of it away from what it checks.
/// </summary>
public sealed class RxCoalescingTests
{
    private static readonly TimeSpan Coalesce = TimeSpan.FromMilliseconds(800);

    [Fact]
    public async Task A_stream_is_read_on_the_timer_kicks_are_not_and_a_lone_frame_is_not_held()
    {
        await using var h = await NetHarness.StartAsync(queue: new NetQueueOptions { RxCoalesceTime = Coalesce });
        await h.BringUpAsync();
        h.Front.PostRx(16);
        using var wire = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));

        // The first frame finds the tap in the wait set: delivered on arrival. Reading it starts the
        // coalescing window; the next frame waits for the timer.
        var first = Frames.Raw(200, NetHarness.GuestMac, Frames.TapMac, seed: 1);
        wire.Send(first);
        Assert.True(ReceiveFrame(h, first, 5000));
        var sinceFirst = System.Diagnostics.Stopwatch.StartNew();
        var second = Frames.Raw(300, NetHarness.GuestMac, Frames.TapMac, seed: 2);
        wire.Send(second);
        Assert.False(ReceiveFrame(h, second, (int)(Coalesce.TotalMilliseconds / 2)), "the second frame came on arrival: not coalesced");
        Assert.True(ReceiveFrame(h, second, 5000));
        Assert.True(sinceFirst.Elapsed > Coalesce * 0.75, $"the second frame came after {sinceFirst.Elapsed.TotalMilliseconds:0} ms: not coalesced");

        // Reading the second frame opened a new window. A guest kick inside it is served at once
        // (its pass also reads the tap, so the timer only ever delays frames, never adds passes).
        var fromGuest = Frames.Raw(250, Frames.TapMac, NetHarness.GuestMac, seed: 3);
        var sinceKick = System.Diagnostics.Stopwatch.StartNew();
        h.Front.QueueFrame(fromGuest);
        h.Front.Push();
        Assert.Equal(NetifRsp.Okay, h.Front.WaitTxResponses(1)[0].Status);
        Assert.Equal(fromGuest, wire.Receive(5000));
        Assert.True(sinceKick.Elapsed < Coalesce * 0.75, $"guest TX waited {sinceKick.Elapsed.TotalMilliseconds:0} ms behind the rx timer");

        // The timer pass after that finds the tap empty and puts it back in the wait set: a lone
        // frame sent later is delivered on arrival again.
        await Task.Delay(Coalesce * 2);
        var lone = Frames.Raw(120, NetHarness.GuestMac, Frames.TapMac, seed: 4);
        var sinceLone = System.Diagnostics.Stopwatch.StartNew();
        wire.Send(lone);
        Assert.True(ReceiveFrame(h, lone, 5000));
        Assert.True(sinceLone.Elapsed < Coalesce * 0.75, $"a lone frame waited {sinceLone.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(0, h.Stats().RxDrops);
    }

    // The namespace's own traffic (IPv6 DAD, MLD, router solicitations when the link comes up) reaches
    // the guest too, whenever the test machine gets round to it: frames other than the one awaited
    // are skipped. No buffers are reposted here: that kicks the queue, which would read the tap.
    private static bool ReceiveFrame(NetHarness h, byte[] expected, int timeoutMs)
    {
        long deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            long left = deadline - Environment.TickCount64;
            if (left <= 0)
                return false;
            var got = h.Front.Receive((int)left);
            if (got is null)
                return false;
            if (got.Data.AsSpan().SequenceEqual(expected))
                return true;
        }
    }

    [Fact]
    public async Task Frames_that_outrun_the_window_are_all_delivered_in_order()
    {
        await using var h = await NetHarness.StartAsync(queue: new NetQueueOptions { RxCoalesceTime = TimeSpan.FromMilliseconds(5) });
        await h.BringUpAsync();
        h.Front.PostRx(64);
        using var wire = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));

        // 300 frames through a 64-buffer ring: the guest reposts as it goes, the queue reads the tap
        // on its timer between bursts; nothing may be lost or reordered on the way.
        const int count = 300;
        var sender = Task.Run(() =>
        {
            for (int i = 0; i < count; i++)
            {
                wire.Send(Frames.Raw(100 + i % 50, NetHarness.GuestMac, Frames.TapMac, seed: (byte)i));
                if (i % 20 == 19)
                    Thread.Sleep(2);
            }
        });
        for (int i = 0; i < count; i++)
        {
            var got = h.Front.Receive();
            Assert.NotNull(got);
            h.Front.PostRx(1);
            if ((got.Data[0] & 1) != 0)
            {
                i--; // the namespace's own multicast (IPv6 link-up traffic), not one of ours
                continue;
            }
            Assert.Equal(Frames.Raw(100 + i % 50, NetHarness.GuestMac, Frames.TapMac, seed: (byte)i), got.Data);
        }
        await sender;
        Assert.Equal(0, h.Stats().RxDrops);
    }
}
