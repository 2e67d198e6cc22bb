using XenBackends.Backend.Net;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.SimulatedHost.Hostile;
using XenBackends.Xenbus;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-392 / CVE-2021-28715: a guest that posts no rx buffers made netback queue frames for it
/// without limit (dom0 memory); fix: a 512 KiB per-queue byte cap with drops. CVE-2021-28714: a
/// guest keeping one buffer posted defeated the stall timer; fix: count the slots the head frame
/// needs. XSA-424 / CVE-2022-42328/42329: the drops of that fix could deadlock; here the user-space
/// analogue is tearing the device down with the queue full and the flood still running
/// (netback-anchors 4.1 "Guest-RX protections").
/// </summary>
public class NetXsa392RxQueueTests
{
    private const int FrameBytes = 1000;
    // The cap counts whole records, the frame plus its 10-byte virtio_net_hdr, and admits a record
    // while the queue is below the cap (netback likewise checks before queueing), hence the + 1.
    private const int CapFrames = 512 * 1024 / (FrameBytes + 10) + 1;

    private static byte[] Flood(NetHostileFixture f, int i, int size = FrameBytes) =>
        Frames.Raw(size, f.AttackerMac, NetHostileFixture.TapMac, seed: (byte)i);

    /// <summary>
    /// No buffers posted, 4 000 frames of 1 000 bytes (4 MB) from the namespace: the backend keeps
    /// reading the tap (no back-pressure into the host stack), counts drops, its heap does not grow
    /// with the flood, and once buffers are posted it delivers at most one cap's worth of the queued
    /// flood, then fresh frames again. The stall timeout is set long so only the cap is at work.
    /// </summary>
    [Fact]
    public async Task XSA_392_guest_without_rx_buffers_under_a_flood_is_byte_capped_and_recovers()
    {
        await using var f = await NetHostileFixture.CreateAsync(new NetQueueOptions { RxStallTimeout = TimeSpan.FromSeconds(60) });
        var raw = await f.ConnectAttackerAsync();
        using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
        long heapBefore = ProcessProbe.HeapAfterFullGc();
        var fds = NetHostileFixture.Fds();

        const int Sent = 4000;
        var flood = Task.Run(() =>
        {
            for (int i = 0; i < Sent; i++)
                wire.Send(Flood(f, i));
        });
        await f.BystanderDuringAsync(flood);
        // Drops are counted by the backend, which keeps reading the tap: most of the flood is its drops
        // (the rest overflowed the kernel's own tap queue while the sender outran the reader).
        await Bounded.UntilAsync(() => f.AttackerStats.RxDrops >= Sent / 4, NetHostileFixture.Bound,
            $"rx drops counted (have {f.AttackerStats.RxDrops})");
        // Wait until the backend has read everything the kernel still held for the tap (drops stop
        // moving), so what is delivered below can only come from the backend's own queue.
        long lastDrops = -1;
        await Bounded.UntilAsync(async () =>
        {
            long now = f.AttackerStats.RxDrops;
            bool stable = now == lastDrops;
            lastDrops = now;
            await Task.Delay(200);
            return stable;
        }, NetHostileFixture.Bound, "rx drops to settle");
        Assert.True(ProcessProbe.HeapAfterFullGc() - heapBefore < 2 << 20, "the heap grew with the flood");
        NetHostileFixture.AssertFdsBounded(fds, 0);

        // Now drain whatever was queued: never more than the cap.
        int delivered = 0, quiet = 0;
        while (quiet < 3)
        {
            raw.PostRx((int)(raw.Rx.Size - raw.RxOutstanding));
            await Task.Delay(100);
            int n = raw.TakeRxFrames(out int errors).Count;
            Assert.Equal(0, errors);
            delivered += n;
            quiet = n == 0 ? quiet + 1 : 0;
        }
        Assert.InRange(delivered, 1, CapFrames);
        Assert.True(f.AttackerStats.RxDrops + delivered <= Sent);

        // Recovery: fresh frames arrive while buffers are posted.
        for (int i = 0; i < 20; i++)
            wire.Send(Flood(f, 200 + i, 300));
        var fresh = new List<byte[]>();
        await Bounded.UntilAsync(() =>
        {
            fresh.AddRange(raw.TakeRxFrames(out _));
            raw.PostRx((int)(raw.Rx.Size - raw.RxOutstanding));
            return fresh.Count >= 20;
        }, NetHostileFixture.Bound, "fresh frames after recovery");
        Assert.Equal(Enumerable.Range(0, 20).Select(i => Flood(f, 200 + i, 300)), fresh);
        Assert.Equal(0, f.AttackerStats.FatalResets);
    }

    /// <summary>
    /// CVE-2021-28714: the guest keeps exactly one rx buffer posted while the namespace sends 8 000-byte
    /// frames (two slots each, MTU 9000). The head frame never fits, so the stall detector must fire
    /// even though the ring is never empty, drop the queue and keep dropping on arrival; buffers for a
    /// maximal frame end the stall.
    /// </summary>
    [Fact]
    public async Task XSA_392_one_free_slot_does_not_defeat_stall_detection()
    {
        await using var f = await NetHostileFixture.CreateAsync(new NetQueueOptions { RxStallTimeout = TimeSpan.FromSeconds(1) });
        var raw = await f.ConnectAttackerAsync();
        f.Ns.Ip("link", "set", f.AttackerVif, "mtu", "9000");
        using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
        raw.PostRx(1);

        var flood = Task.Run(async () =>
        {
            for (int i = 0; i < 300; i++)
            {
                wire.Send(Flood(f, i, 8000));
                if (i % 50 == 0) await Task.Delay(50);
            }
        });
        await f.BystanderDuringAsync(flood);
        await Bounded.UntilAsync(() => f.AttackerStats.RxStalls >= 1, NetHostileFixture.Bound, "stall detected");
        Assert.Equal(1u, raw.RxOutstanding); // the one buffer was never used for a frame it could not hold
        Assert.True(f.AttackerStats.RxDrops > 0);

        raw.PostRx(64);
        var fresh = new List<byte[]>();
        await Bounded.UntilAsync(() =>
        {
            wire.Send(Flood(f, 99, 8000));
            fresh.AddRange(raw.TakeRxFrames(out _));
            raw.PostRx((int)(raw.Rx.Size - raw.RxOutstanding));
            return fresh.Count > 0;
        }, NetHostileFixture.Bound, "delivery after the stall ended");
        Assert.Equal(Flood(f, 99, 8000), fresh[^1]);
        Assert.Equal(0, f.AttackerStats.FatalResets);
    }

    /// <summary>
    /// XSA-424: the drops of the XSA-392 fix could deadlock netback. Here the guest closes its vif
    /// while the rx queue is full and the flood continues: the backend must reach Closed within the
    /// bound (no thread stuck on the queue), release its fds, and keep serving the bystander.
    /// </summary>
    [Fact]
    public async Task XSA_424_closing_with_a_full_rx_queue_under_a_flood_tears_down_cleanly()
    {
        await using var f = await NetHostileFixture.CreateAsync(new NetQueueOptions { RxStallTimeout = TimeSpan.FromSeconds(60) });
        var raw = await f.ConnectAttackerAsync();
        // Measured with the queue open: after the close nothing may have accumulated on top of it.
        var fds = NetHostileFixture.Fds();
        using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
        using var stop = new CancellationTokenSource();
        var flood = Task.Run(() =>
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                try { wire.Send(Flood(f, i)); }
                catch (InvalidOperationException) { return; } // the tap went away with the device
            }
        });
        await Bounded.UntilAsync(() => f.AttackerStats.RxDrops > 1000, NetHostileFixture.Bound, "queue full and dropping");
        await raw.WriteStateAsync(5);
        await f.WaitBackendStateAsync(f.AttackerNic, XenbusState.Closing);
        await raw.WriteStateAsync(6);
        await f.WaitBackendStateAsync(f.AttackerNic, XenbusState.Closed);
        stop.Cancel();
        await flood.WaitAsync(NetHostileFixture.Bound);
        await f.AssertBystanderServedAsync(1);
        // Relative to the connected state: nothing accumulated per frame, per drop or by the close
        // (beyond our packet socket). Whether the queue's own fds went is not isolated here. Slack 6: under load the runtime lazily adds socket engines
        // (epoll + eventfd each), seen only when the whole suite runs.
        for (long end = Environment.TickCount64 + (long)NetHostileFixture.Bound.TotalMilliseconds;
             NetHostileFixture.Fds().Count > fds.Count + 1 && Environment.TickCount64 < end;)
            await Task.Delay(20);
        NetHostileFixture.AssertFdsBounded(fds, 1 + 6);
    }
}
