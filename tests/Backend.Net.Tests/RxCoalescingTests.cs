using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Tests;

/// <summary>
/// Guest-RX coalescing (NetQueueOptions.RxCoalesceTime) through a real tap: while frames keep
/// arriving the tap is read on a timer, but kicks are still served at once and a frame that arrives
/// after the stream has stopped is not held back. Passes of the queue thread are counted rather than
/// arrival times measured, so a test thread the machine delays cannot fake or hide coalescing.
/// </summary>
public sealed class RxCoalescingTests
{
    private static readonly TimeSpan Coalesce = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task A_stream_is_read_on_the_timer_kicks_are_not_and_a_lone_frame_is_not_held()
    {
        await using var h = await NetHarness.StartAsync(queue: new NetQueueOptions { RxCoalesceTime = Coalesce });
        await h.BringUpAsync();
        h.Front.PostRx(128); // enough for the whole stream: reposting would kick the queue
        using var wire = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        NetQueueCounters counters = h.Net.Counters[0];

        // 100 frames, 10 ms apart. Read on arrival, each would take a pass of its own; coalesced,
        // the tap is read about once a second while they keep coming.
        const int count = 100;
        long passes0 = Volatile.Read(ref counters.Passes);
        var sender = Task.Run(() =>
        {
            for (int i = 0; i < count; i++)
            {
                wire.Send(Frames.Raw(100 + i, NetHarness.GuestMac, Frames.TapMac, seed: (byte)i));
                Thread.Sleep(10);
            }
        });
        for (int i = 0; i < count; i++)
            Assert.True(ReceiveFrame(h, Frames.Raw(100 + i, NetHarness.GuestMac, Frames.TapMac, seed: (byte)i), 10_000), $"frame {i} lost");
        await sender;
        long passes = Volatile.Read(ref counters.Passes) - passes0;
        Assert.True(passes < count / 4, $"{passes} passes for {count} frames: not coalesced");

        // Reading the last frames opened a new window. A guest kick inside it is served at once
        // (its pass also reads the tap, so the timer only ever delays frames, never adds passes).
        var fromGuest = Frames.Raw(250, Frames.TapMac, NetHarness.GuestMac, seed: 3);
        var sinceKick = System.Diagnostics.Stopwatch.StartNew();
        h.Front.QueueFrame(fromGuest);
        h.Front.Push();
        Assert.Equal(NetifRsp.Okay, h.Front.WaitTxResponses(1)[0].Status);
        Assert.Equal(fromGuest, wire.Receive(5000));
        Assert.True(sinceKick.Elapsed < Coalesce / 2, $"guest TX waited {sinceKick.Elapsed.TotalMilliseconds:0} ms behind the rx timer");

        // The timer pass after that finds the tap empty and puts it back in the wait set: a lone
        // frame sent later is delivered on arrival again.
        await Task.Delay(Coalesce * 2.5);
        var lone = Frames.Raw(120, NetHarness.GuestMac, Frames.TapMac, seed: 4);
        var sinceLone = System.Diagnostics.Stopwatch.StartNew();
        wire.Send(lone);
        Assert.True(ReceiveFrame(h, lone, 5000));
        Assert.True(sinceLone.Elapsed < Coalesce / 2, $"a lone frame waited {sinceLone.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(0, h.Stats().RxDrops);
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
            Assert.Equal(Frames.Raw(100 + i % 50, NetHarness.GuestMac, Frames.TapMac, seed: (byte)i), got.Data);
        }
        await sender;
        Assert.Equal(count, h.Stats().RxPackets);
    }

    // The next frame the guest receives is the one awaited (false if none came in time).
    private static bool ReceiveFrame(NetHarness h, byte[] expected, int timeoutMs)
    {
        var got = h.Front.Receive(timeoutMs);
        if (got is null)
            return false;
        Assert.Equal(expected, got.Data);
        return true;
    }
}
