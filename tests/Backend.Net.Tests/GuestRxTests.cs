using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Tests;

/// <summary>Wire-to-guest: frames sent towards the tap inside the namespace land in the guest's posted buffers intact.</summary>
public sealed class GuestRxTests
{
    [Fact]
    public async Task Frame_sent_out_of_the_vif_arrives_in_the_guest_byte_for_byte()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync();
        h.Front.PostRx(8);
        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        var frame = Frames.Raw(300, NetHarness.GuestMac, Frames.TapMac, seed: 42);

        inject.Send(frame);

        var got = h.Front.Receive();
        Assert.NotNull(got);
        Assert.Equal(frame, got.Data);
        Assert.Equal(1, got.Slots);
        Assert.Equal(0, got.ErrorStatus);
        Assert.Equal(1, h.Stats().RxPackets);
    }

    [Fact]
    public async Task A_frame_short_of_slots_is_delivered_when_the_guest_posts_more_kicking_only_when_asked()
    {
        // No other tap traffic and no stall for a minute: only a kick can get the frame moving.
        await using var h = await NetHarness.StartAsync(queue: new NetQueueOptions { RxStallTimeout = TimeSpan.FromSeconds(60) });
        await h.BringUpAsync(mtu: 9000);
        h.Front.PostRx(1);
        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        var frame = Frames.Raw(9000, NetHarness.GuestMac, Frames.TapMac, seed: 8);
        inject.Send(frame);
        // It needs 3 slots and one is posted: it waits in the queue, the worker goes to sleep.
        Assert.Null(h.Front.Receive(timeoutMs: 300));

        // req_event must lie past the posted buffer, or this post asks for no kick (netback arms
        // req_prod + 1; req_cons + 1 is behind req_prod here and no push ever crosses it).
        h.Front.PostRx(2, kickOnlyIfAsked: true);

        var got = h.Front.Receive(timeoutMs: 5000);
        Assert.NotNull(got);
        Assert.Equal(frame, got.Data);
        Assert.Equal(0, h.Stats().RxStalls);
    }

    [Fact]
    public async Task Jumbo_frame_spans_slots_with_more_data_each_response_in_its_request_slot()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync(mtu: 9000);
        h.Front.PostRx(8);
        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        var frame = Frames.Raw(9000, NetHarness.GuestMac, Frames.TapMac, seed: 5);

        inject.Send(frame);

        var got = h.Front.Receive();
        Assert.NotNull(got);
        Assert.Equal(3, got.Slots);
        Assert.Equal(frame, got.Data);
    }

    [Fact]
    public async Task Udp_from_the_namespace_stack_reaches_the_guest_with_csum_flags()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync();
        h.Front.PostRx(16);
        var payload = Frames.Payload(500, 11);

        h.Ns.Inside(() =>
        {
            using var udp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.200.1.1"), 7000));
            udp.Send(payload, payload.Length, new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.200.1.2"), 7001));
            return 0;
        });

        GuestFrame? got = null;
        for (int i = 0; i < 8 && (got is null || got.Data.Length < 42 || got.Data[23] != 17); i++)
            got = h.Front.Receive();
        Assert.NotNull(got);
        Assert.Equal(payload, got.Data.AsSpan(42).ToArray());
        // The tap handed over a partial checksum (TUN_F_CSUM, the frontend takes IPv4 offload): the guest is told so.
        Assert.NotEqual(0, got.FirstFlags & NetRxFlags.CsumBlank);
        Assert.False(Frames.Ipv4ChecksumsValid(got.Data)); // only the pseudo-header sum, as csum_blank promises
        InternetChecksum.Complete(got.Data, 34, 6, udp: true);
        Assert.True(Frames.Ipv4ChecksumsValid(got.Data));
        Assert.NotEqual(0, got.FirstFlags & NetRxFlags.DataValidated);
    }

    [Fact]
    public async Task Frontend_without_csum_offload_gets_completed_checksums()
    {
        await using var h = await NetHarness.StartAsync();
        var features = new Dictionary<string, string>(NetHarness.LinuxNetfrontFeatures) { ["feature-no-csum-offload"] = "1", ["feature-ipv6-csum-offload"] = "0" };
        await h.BringUpAsync(features);
        h.Front.PostRx(16);
        var payload = Frames.Payload(700, 2);
        h.Ns.Inside(() =>
        {
            using var udp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.200.1.1"), 7000));
            udp.Send(payload, payload.Length, new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.200.1.2"), 7001));
            return 0;
        });
        GuestFrame? got = null;
        for (int i = 0; i < 8 && (got is null || got.Data.Length < 42 || got.Data[23] != 17); i++)
            got = h.Front.Receive();
        Assert.NotNull(got);
        Assert.Equal(0, got.FirstFlags & NetRxFlags.CsumBlank);
        Assert.True(Frames.Ipv4ChecksumsValid(got.Data));
    }

    [Fact]
    public async Task Without_posted_buffers_frames_are_dropped_and_counted_then_delivery_resumes()
    {
        var options = new NetQueueOptions { RxStallTimeout = TimeSpan.FromMilliseconds(100), RxQueueBytes = 16 * 1024 };
        await using var h = await NetHarness.StartAsync(queue: options);
        await h.BringUpAsync();
        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        for (int i = 0; i < 40; i++)
            inject.Send(Frames.Raw(1000, NetHarness.GuestMac, Frames.TapMac, seed: (byte)i));

        // Bounded wait: the byte cap and the stall timer both end in counted drops, never a blocked queue.
        long deadline = Environment.TickCount64 + 5000;
        while (h.Stats().RxDrops < 40 && Environment.TickCount64 < deadline)
            Thread.Sleep(10);
        Assert.Equal(40, h.Stats().RxDrops + h.Stats().RxPackets);
        Assert.Equal(0, h.Stats().RxPackets);
        Assert.True(h.Stats().RxStalls >= 1);

        h.Front.PostRx(32);
        var frame = Frames.Raw(200, NetHarness.GuestMac, Frames.TapMac, seed: 77);
        Thread.Sleep(50);
        inject.Send(frame);
        GuestFrame? got = null;
        for (int i = 0; i < 8 && (got is null || got.Data.Length != 200); i++)
            got = h.Front.Receive();
        Assert.NotNull(got);
        Assert.Equal(frame, got.Data);
    }

    [Fact]
    public async Task One_free_slot_does_not_defeat_stall_detection_for_a_multi_slot_frame()
    {
        var options = new NetQueueOptions { RxStallTimeout = TimeSpan.FromMilliseconds(100) };
        await using var h = await NetHarness.StartAsync(queue: options);
        await h.BringUpAsync(mtu: 9000);
        h.Front.PostRx(1);
        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        inject.Send(Frames.Raw(6000, NetHarness.GuestMac, Frames.TapMac));

        long deadline = Environment.TickCount64 + 5000;
        while (h.Stats().RxStalls == 0 && Environment.TickCount64 < deadline)
            Thread.Sleep(10);
        Assert.Equal(1, h.Stats().RxStalls);
        Assert.Equal(1, h.Stats().RxDrops);
        Assert.Equal(0, h.Stats().RxPackets);
    }
}
