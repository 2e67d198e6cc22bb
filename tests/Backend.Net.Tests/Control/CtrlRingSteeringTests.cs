using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Net.Tests.Control;

/// <summary>
/// The control ring end to end (a frontend's ring page, event channel and grants, our real NetDevice),
/// and what it is for: received frames carry the frontend's hash and land on the queue its mapping
/// table names, for traffic sent into the tap inside a test namespace.
/// </summary>
public sealed class CtrlRingSteeringTests
{
    private static readonly byte[] HostIp = Frames.HostIp;

    private static byte[] TcpFrom(ushort sport, ushort dport, byte[]? src = null) =>
        Frames.Tcp4(NetHarness.GuestMac, Frames.TapMac, src ?? HostIp, Frames.GuestIp, sport, dport, 1, Frames.Payload(64), Frames.Csum.Full);

    private static uint ExpectedTcpHash(byte[] frame) =>
        ToeplitzReference.Hash(ToeplitzTests.RssKey, [.. frame.AsSpan(26, 8), .. frame.AsSpan(34, 4)]);

    [Fact]
    public async Task Ctrl_ring_is_served_and_rx_frames_carry_the_toeplitz_hash_extra_the_frontend_asked_for()
    {
        await using var h = await NetHarness.StartAsync();
        var ctrl = new TestCtrlRing(h.Guest);
        await h.BringUpAsync(ctrl: ctrl);

        var size = ctrl.Send(NetifCtrlType.GetHashMappingSize);
        Assert.Equal(NetifCtrlStatus.Success, size.Status);
        Assert.Equal(128u, size.Data);
        Assert.Equal(NetifCtrlStatus.NotSupported, ctrl.Send(NetifCtrlType.GetHashFlags).Status);
        ctrl.ConfigureToeplitz(ToeplitzTests.RssKey, NetifCtrlHashType.Ipv4Tcp, mapping: null);
        Assert.Equal(NetifCtrlHashType.Ipv4Tcp, h.Net.HashSettings.Types);

        h.Front.PostRx(16);
        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        var tcp = TcpFrom(40000, 80);
        inject.Send(tcp);
        var got = h.Front.Receive();
        Assert.NotNull(got);
        Assert.Equal(tcp, got.Data);
        Assert.NotNull(got.Hash);
        Assert.Equal(NetifCtrlHashType.Ipv4TcpBit, got.Hash.Value.HashType);
        Assert.Equal(NetifCtrlHashAlgorithm.Toeplitz, got.Hash.Value.HashAlgorithm);
        Assert.Equal(ExpectedTcpHash(tcp), got.Hash.Value.HashValue);
        Assert.Equal(2, got.Slots); // the data slot and the extra's slot

        // Not IP: nothing to hash, so no extra.
        var raw = Frames.Raw(100, NetHarness.GuestMac, Frames.TapMac);
        inject.Send(raw);
        var plain = h.Front.Receive();
        Assert.NotNull(plain);
        Assert.Equal(raw, plain.Data);
        Assert.Null(plain.Hash);
        Assert.Equal(1, plain.Slots);
    }

    [Fact]
    public async Task Ctrl_ring_ref_without_its_event_channel_refuses_the_connection()
    {
        await using var h = await NetHarness.StartAsync();
        var ctrl = new TestCtrlRing(h.Guest);
        await h.HotplugAsync();
        await ctrl.WriteKeysAsync(h.Store, h.FrontendPath, withEventChannel: false);
        await h.ConnectFrontendAsync();
        await h.WaitBackendStateAsync(XenbusState.Closing);
        Assert.Contains("event-channel-ctrl", await h.ReadErrorAsync());
    }

    [Fact]
    public async Task Mapping_table_steers_every_flow_to_the_queue_its_hash_selects()
    {
        const int queues = 4;
        await using var h = await NetHarness.StartAsync(maxQueues: queues);
        var ctrl = new TestCtrlRing(h.Guest);
        await h.BringUpMultiQueueAsync(queues, ctrl);
        uint[] mapping = [3, 1, 0, 2, 2, 0, 1, 3];
        ctrl.ConfigureToeplitz(ToeplitzTests.RssKey, NetifCtrlHashType.Ipv4Tcp, mapping);
        foreach (var q in h.FrontQueues)
            q.PostRx(64);

        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        var expected = new List<byte[]>[queues];
        for (int q = 0; q < queues; q++)
            expected[q] = [];
        for (ushort flow = 0; flow < 40; flow++)
        {
            var frame = TcpFrom((ushort)(30000 + flow), 443);
            expected[mapping[ExpectedTcpHash(frame) % (uint)mapping.Length]].Add(frame);
            inject.Send(frame);
        }

        for (int q = 0; q < queues; q++)
        {
            var received = new List<byte[]>();
            for (int i = 0; i < expected[q].Count; i++)
            {
                var got = h.FrontQueues[q].Receive();
                Assert.True(got is not null, $"queue {q}: got {i} of {expected[q].Count} frames");
                Assert.Equal(ExpectedTcpHash(got.Data), got.Hash!.Value.HashValue);
                received.Add(got.Data);
            }
            // Order within one flow is kept; across flows the kernel's tap queues may interleave.
            Assert.Equal(expected[q].Select(Convert.ToHexString).Order(), received.Select(Convert.ToHexString).Order());
        }
        Assert.True(expected.Count(e => e.Count > 0) >= 3, "the flows should have spread over the queues");
        for (int q = 0; q < queues; q++)
            Assert.Null(h.FrontQueues[q].Receive(timeoutMs: 50));
    }

    [Fact]
    public async Task Frames_from_every_guest_queue_reach_the_tap()
    {
        const int queues = 3;
        await using var h = await NetHarness.StartAsync(maxQueues: 4);
        await h.BringUpMultiQueueAsync(queues);
        Assert.Equal(queues, h.Net.Counters.Count);
        using var capture = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));

        for (int q = 0; q < queues; q++)
        {
            var frame = Frames.Raw(120 + q, Frames.TapMac, NetHarness.GuestMac, seed: (byte)(q + 1));
            h.FrontQueues[q].QueueFrame(frame);
            h.FrontQueues[q].Push();
            Assert.Equal(NetifRsp.Okay, h.FrontQueues[q].WaitTxResponses(1)[0].Status);
            Assert.Equal(frame, capture.Receive(5000));
            Assert.Equal(1, h.Stats(q).TxPackets);
        }
    }

    [Fact]
    public async Task Tap_queues_beyond_what_the_frontend_uses_are_detached_so_no_flow_lands_on_an_unserved_fd()
    {
        // The tap was opened with 4 queue fds at prepare and moved into the namespace by the hotplug
        // step; the frontend asks for 2. Without TUNSETQUEUE detach the kernel would spread flows over
        // all 4 fds and about half would never reach the guest.
        await using var h = await NetHarness.StartAsync(maxQueues: 4);
        await h.BringUpMultiQueueAsync(2);
        foreach (var q in h.FrontQueues)
            q.PostRx(64);
        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        const int flows = 40;
        for (ushort flow = 0; flow < flows; flow++)
            inject.Send(TcpFrom((ushort)(20000 + flow), 22));

        int received = 0;
        for (int q = 0; q < 2; q++)
        {
            while (h.FrontQueues[q].Receive(timeoutMs: received == flows ? 50 : 500) is not null)
                received++;
        }
        Assert.Equal(flows, received);
        Assert.Equal(flows, h.Stats(0).RxPackets + h.Stats(1).RxPackets);
    }
}
