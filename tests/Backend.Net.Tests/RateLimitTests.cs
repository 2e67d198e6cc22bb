using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Tests;

/// <summary>
/// Guest-TX pacing from the backend's rate key. Time never comes from the wall clock: the queue reads
/// an injected microsecond clock that only the test moves, so "how many frames per credit window" is
/// an exact count, whatever the machine's load.
/// </summary>
public sealed class RateLimitTests
{
    private sealed class ManualClock
    {
        private long _now = 1_000_000;
        public long Now() => Volatile.Read(ref _now);
        public void Advance(long microseconds) => Interlocked.Add(ref _now, microseconds);
    }

    private const int FrameSize = 1000;
    private const long Window = 100_000; // 100 ms, in microseconds

    private static async Task<(NetHarness H, ManualClock Clock, PacketSocket Capture)> UpAsync(string? rate, (ulong, ulong)? defaultRate = null)
    {
        var clock = new ManualClock();
        var h = await NetHarness.StartAsync(queue: new NetQueueOptions { ClockMicroseconds = clock.Now }, defaultRate: defaultRate);
        if (rate is not null)
            await h.Store.WriteAsync(h.BackendPath + "/rate", rate);
        await h.BringUpAsync();
        var capture = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        return (h, clock, capture);
    }

    private static void QueueBurst(NetHarness h, int frames)
    {
        for (int i = 0; i < frames; i++)
            h.Front.QueueFrame(Frames.Raw(FrameSize, Frames.TapMac, NetHarness.GuestMac, seed: (byte)i));
        h.Front.Push();
    }

    /// <summary>Exactly <paramref name="expected"/> more frames answered and on the wire, then nothing more while the clock stands still.</summary>
    private static void ExpectWindow(NetHarness h, PacketSocket capture, int expected, ref int total)
    {
        if (expected > 0)
        {
            var responses = h.Front.WaitTxResponses(expected);
            Assert.All(responses, r => Assert.Equal(NetifRsp.Okay, r.Status));
            for (int i = 0; i < expected; i++)
                Assert.NotNull(capture.Receive(5000));
        }
        total += expected;
        // The clock does not move, so the deferred frames must stay deferred however long we look.
        Assert.Equal(0, h.Front.CountTxResponsesWithin(150));
        Assert.Equal(total, h.Stats().TxPackets);
    }

    [Fact]
    public async Task Burst_is_paced_to_the_credit_per_window_and_deferred_frames_are_not_dropped()
    {
        var (h, clock, capture) = await UpAsync($"{3 * FrameSize},{Window}");
        await using var _ = h;
        using var __ = capture;
        QueueBurst(h, 8);

        int total = 0;
        ExpectWindow(h, capture, 3, ref total); // the first window's credit
        clock.Advance(Window);
        h.Front.Kick();
        ExpectWindow(h, capture, 3, ref total);
        clock.Advance(Window);
        h.Front.Kick();
        ExpectWindow(h, capture, 2, ref total);
        Assert.Equal(0, h.Stats().TxDrops);
    }

    [Fact]
    public async Task A_rate_change_applies_while_connected_without_a_reconnect()
    {
        var (h, clock, capture) = await UpAsync($"{2 * FrameSize},{Window}");
        await using var _ = h;
        using var __ = capture;
        QueueBurst(h, 9);
        int total = 0;
        ExpectWindow(h, capture, 2, ref total);

        await h.Store.WriteAsync(h.BackendPath + "/rate", $"{5 * FrameSize},{Window}");
        await WaitUntilAsync(() => h.Net.Rate == ((ulong)(5 * FrameSize), (ulong)Window));
        clock.Advance(Window);
        h.Front.Kick();
        ExpectWindow(h, capture, 5, ref total);

        // Back to unlimited: whatever is left goes at once.
        await h.Store.WriteAsync(h.BackendPath + "/rate", "");
        await WaitUntilAsync(() => h.Net.Rate is null);
        h.Front.Kick();
        ExpectWindow(h, capture, 2, ref total);
        Assert.Equal(XenBackends.Xenbus.XenbusState.Connected, await h.Device.ReadBackendStateAsync());
    }

    [Fact]
    public async Task A_connected_vif_waits_for_its_watches_instead_of_re_reading_xenstore()
    {
        // Found in the Xen lab: the rate / request-multicast-control loop never consumed the watch
        // signal, so every connected vif re-read both keys as fast as xenstored answered, about one
        // dom0 CPU between the worker and xenstored with no traffic at all.
        var (h, _, capture) = await UpAsync($"{2 * FrameSize},{Window}");
        await using var _h = h;
        using var __ = capture;
        await Task.Delay(200); // let the watch loop settle after connecting
        long before = h.Server.RequestsHandled;
        await Task.Delay(500);
        long idle = h.Server.RequestsHandled - before;
        Assert.True(idle < 20, $"{idle} xenstore requests in 500 ms of an idle, connected vif");

        // Waiting must not mean deaf: both watched keys still apply.
        await h.Store.WriteAsync(h.BackendPath + "/rate", $"{5 * FrameSize},{Window}");
        await WaitUntilAsync(() => h.Net.Rate == ((ulong)(5 * FrameSize), (ulong)Window));
        bool multicast = h.Net.MulticastControl;
        await h.Store.WriteAsync(h.FrontendPath + "/request-multicast-control", multicast ? "0" : "1");
        await WaitUntilAsync(() => h.Net.MulticastControl != multicast);
    }

    /// <summary>
    /// The rate / request-multicast-control loop raced two watches; the wait on the quiet one (rate,
    /// dom0's key) stayed queued each time the guest rewrote its own key, one per rewrite for as long
    /// as the vif lived (XSA-349's memory growth, through waits instead of events).
    /// </summary>
    [Fact]
    public async Task A_guest_rewriting_request_multicast_control_leaves_no_waits_behind()
    {
        var (h, _, capture) = await UpAsync($"{2 * FrameSize},{Window}");
        await using var _h = h;
        using var __ = capture;
        for (int i = 0; i < 2000; i++)
            await h.Store.WriteAsync(h.FrontendPath + "/request-multicast-control", (i % 2).ToString(System.Globalization.CultureInfo.InvariantCulture));
        await WaitUntilAsync(() => h.Net.MulticastControl); // the last write was "1"
        await Task.Delay(300);
        Assert.InRange(h.Watches.MostWaitsOnOneSubscription, 0, 1);
    }

    [Fact]
    public async Task Without_a_rate_key_the_default_paces_and_a_key_written_later_wins_until_removed()
    {
        (ulong, ulong) fallback = (3 * FrameSize, Window);
        var (h, clock, capture) = await UpAsync(rate: null, defaultRate: fallback);
        await using var _ = h;
        using var __ = capture;
        Assert.Equal(fallback, h.Net.Rate);
        QueueBurst(h, 12);
        int total = 0;
        ExpectWindow(h, capture, 3, ref total);

        // The toolstack's own key overrides the host default (here more generous than it).
        await h.Store.WriteAsync(h.BackendPath + "/rate", $"{5 * FrameSize},{Window}");
        await WaitUntilAsync(() => h.Net.Rate == ((ulong)(5 * FrameSize), (ulong)Window));
        clock.Advance(Window);
        h.Front.Kick();
        ExpectWindow(h, capture, 5, ref total);

        // Key removed: the default applies again.
        await h.Store.RemoveAsync(h.BackendPath + "/rate");
        await WaitUntilAsync(() => h.Net.Rate == fallback);
        clock.Advance(Window);
        h.Front.Kick();
        ExpectWindow(h, capture, 3, ref total);
        clock.Advance(Window);
        h.Front.Kick();
        ExpectWindow(h, capture, 1, ref total);
        Assert.Equal(0, h.Stats().TxDrops);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        long deadline = Environment.TickCount64 + 5000;
        while (!condition())
        {
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException("condition not reached");
            await Task.Delay(5);
        }
    }

    [Fact]
    public void Packet_larger_than_one_window_goes_once_enough_windows_of_credit_accumulated()
    {
        // netback's "large packet" rule: credit may build up to max(128 KiB, bytes), so a 64 KiB frame
        // on a 5000-byte window is not stuck forever: 5000 at connect plus 12 refills = 65000 < 65535, the 13th makes it.
        long now = 0;
        var credit = new TxCredit((5000, 100_000), now);
        int windows = 0;
        while (!credit.TryConsume(65535, now))
        {
            Assert.True(credit.RetryAt > now, "a deferred packet is retried at a later time");
            now = credit.RetryAt;
            windows++;
            Assert.True(windows <= 13, "the frame must have gone by the 13th window");
        }
        Assert.Equal(13, windows);
        Assert.Equal(65000u + 5000 - 65535, credit.Remaining);
    }

    [Fact]
    public void Unused_credit_accumulates_to_128_KiB_and_never_beyond()
    {
        var credit = new TxCredit((5000, 100_000), 0);
        long now = 0;
        for (int i = 0; i < 1000; i++)
        {
            now += 100_000;
            Assert.False(credit.TryConsume(131073, now)); // larger than the burst cap: never fits
        }
        Assert.Equal(131072ul, credit.Remaining);
        Assert.True(credit.TryConsume(131072, now));
    }

    [Theory]
    [InlineData("10000,50000", 10000ul, 50000ul)]
    [InlineData(null, null, null)]
    [InlineData("", null, null)]
    [InlineData("10000", null, null)]
    [InlineData("10000,0", null, null)]
    [InlineData("x,50000", null, null)]
    [InlineData("-1,50000", null, null)]
    public void Rate_key_parses_as_netback_reads_it(string? text, ulong? bytes, ulong? usec)
    {
        var rate = NetDevice.ParseRate(text);
        Assert.Equal(bytes, rate?.Bytes);
        Assert.Equal(usec, rate?.Microseconds);
    }
}
