using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Tests.Guest;

public sealed class NetfrontTests
{
    private const ushort Domid = 9;
    private static readonly TimeSpan Bound = SimulatedHostHarness.Bound;

    private static async Task<(SimulatedHostHarness H, TestNetback Back, SimulatedNetfront Front)> ConnectAsync(TestNetbackConfig? config = null, NetfrontOptions? options = null)
    {
        var h = await SimulatedHostHarness.StartAsync();
        var guest = await h.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "net-guest"));
        var backTask = TestNetback.StartAsync(h, Domid, 0, config);
        var nic = await h.Toolstack.AddNicAsync(Domid, new NicSpec { Mac = "00:16:3e:00:00:01" });
        var back = await backTask;
        var front = await SimulatedNetfront.AttachAsync(guest, nic.DevId, options);
        await front.WaitConnectedAsync(Bound);
        await front.WaitUntilAsync(() => front.BackendState == XenbusState.Connected, Bound, "backend connected");
        return (h, back, front);
    }

    [Fact]
    public async Task Single_queue_without_split_channels_writes_exactly_linux_netfronts_keys()
    {
        var (h, back, front) = await ConnectAsync(new TestNetbackConfig { MaxQueues = null, SplitEventChannels = false });
        await using (h)
        await using (back)
        await using (front)
        {
            Assert.Equal(XenbusState.Connected, back.FrontendStateAtConnect);
            Assert.Equal(
                ["backend", "backend-id", "event-channel", "feature-gso-tcpv4", "feature-gso-tcpv6", "feature-ipv6-csum-offload",
                 "feature-rx-notify", "feature-sg", "handle", "mac", "mtu", "request-rx-copy", "rx-ring-ref", "state", "trusted", "tx-ring-ref"],
                back.FrontendKeysAtConnect.Keys.ToArray());
            Assert.Equal("1", back.FrontendKeysAtConnect["request-rx-copy"]);
            // Linux netfront never passes through Initialised.
            Assert.Equal([XenbusState.Connected], front.StateHistory);
            Assert.Equal("connected", back.HotplugStatusAtConnected);
            Assert.Equal("00:16:3e:00:00:01", front.Mac);
        }
    }

    [Fact]
    public async Task Multi_queue_with_split_channels_writes_per_queue_keys()
    {
        var (h, back, front) = await ConnectAsync(new TestNetbackConfig { MaxQueues = 4 }, new NetfrontOptions { MaxQueues = 2 });
        await using (h)
        await using (back)
        await using (front)
        {
            var keys = back.FrontendKeysAtConnect;
            Assert.Equal("2", keys["multi-queue-num-queues"]);
            for (int q = 0; q < 2; q++)
                Assert.Equal(
                    [$"queue-{q}/event-channel-rx", $"queue-{q}/event-channel-tx", $"queue-{q}/rx-ring-ref", $"queue-{q}/tx-ring-ref"],
                    keys.Keys.Where(k => k.StartsWith($"queue-{q}/", StringComparison.Ordinal)).ToArray());
            Assert.DoesNotContain("tx-ring-ref", keys.Keys);
            Assert.True(front.SplitEventChannels);
            Assert.Equal(2, front.NumQueues);
        }
    }

    [Fact]
    public async Task Frames_loop_back_with_their_flags_gso_extra_and_slots_and_counters_add_up()
    {
        var (h, back, front) = await ConnectAsync();
        await using (h)
        await using (back)
        await using (front)
        {
            var small = BlkfrontTests.Pattern(60, 1);
            var big = BlkfrontTests.Pattern(9000, 2);
            Assert.Equal(NetifRsp.Okay, await front.SendAsync(small, new NetfrontSendOptions { CsumBlank = true, Queue = 0 }));
            Assert.Equal(NetifRsp.Okay, await front.SendAsync(big, new NetfrontSendOptions { Gso = (NetifGsoType.TcpV4, 1448), Queue = 1 }));
            Assert.Equal(NetifRsp.Okay, await front.SendAsync(small, new NetfrontSendOptions { SlotSize = 16, Queue = 0 }));

            var seen = back.Frames.ToArray();
            Assert.Equal(3, seen.Length);
            Assert.Equal(small, seen[0].Data);
            Assert.Equal(NetTxFlags.CsumBlank | NetTxFlags.DataValidated, seen[0].Flags);
            Assert.Equal(big, seen[1].Data);
            Assert.Equal(3, seen[1].Slots);
            Assert.Equal(NetifExtraType.Gso, seen[1].Gso!.Value.Type);
            Assert.Equal(1448, seen[1].Gso!.Value.GsoSize);
            Assert.Equal(NetifGsoType.TcpV4, seen[1].Gso!.Value.GsoType);
            Assert.Equal(4, seen[2].Slots);

            using var cts = new CancellationTokenSource(Bound);
            var received = new List<ReceivedFrame>();
            for (int i = 0; i < 3; i++)
                received.Add(await front.ReceiveAsync(cts.Token));
            var first = Assert.Single(received, r => r.Data.Length == 60 && r.Flags != 0);
            Assert.Equal(small, first.Data);
            Assert.Equal(NetRxFlags.CsumBlank | NetRxFlags.DataValidated, first.Flags);
            var jumbo = Assert.Single(received, r => r.Data.Length == 9000);
            Assert.Equal(big, jumbo.Data);
            Assert.Equal(3, jumbo.Slots);

            var counters = front.Counters;
            Assert.Equal(new NetfrontCounters(3, 60 + 9000 + 60, 0, 3, 60 + 9000 + 60, 0), counters);
        }
    }

    [Fact]
    public async Task Rx_ring_is_kept_full_across_more_frames_than_it_has_slots()
    {
        var (h, back, front) = await ConnectAsync(new TestNetbackConfig { MaxQueues = null });
        await using (h)
        await using (back)
        await using (front)
        {
            using var cts = new CancellationTokenSource(Bound);
            for (int i = 0; i < 600; i++)
            {
                var frame = BlkfrontTests.Pattern(100 + i, i);
                Assert.Equal(NetifRsp.Okay, await front.SendAsync(frame, cancellationToken: cts.Token));
                Assert.Equal(frame, (await front.ReceiveAsync(cts.Token)).Data);
            }
            Assert.Equal(600, front.Counters.RxPackets);
        }
    }

    [Fact]
    public async Task A_backend_without_rx_copy_is_refused()
    {
        await using var h = await SimulatedHostHarness.StartAsync();
        var guest = await h.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "net-guest"));
        var backTask = TestNetback.StartAsync(h, Domid, 0, new TestNetbackConfig { RxCopy = false });
        var nic = await h.Toolstack.AddNicAsync(Domid, new NicSpec());
        await using var back = await backTask;
        await using var front = await SimulatedNetfront.AttachAsync(guest, nic.DevId);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => front.WaitConnectedAsync(Bound));
        Assert.Contains("feature-rx-copy", error.InnerException!.Message);
        Assert.Empty(front.StateHistory);
    }

    [Fact]
    public async Task Frontend_closes_with_the_backend_and_reconnects_from_initialising()
    {
        var (h, back, front) = await ConnectAsync();
        await using (h)
        await using (back)
        await using (front)
        {
            await back.CloseAsync();
            await front.WaitForStateAsync(XenbusState.Closed, Bound);
            await front.ReconnectAsync();
            await front.WaitConnectedAsync(Bound);
            await front.WaitUntilAsync(() => front.BackendState == XenbusState.Connected, Bound, "backend reconnected");
            Assert.Equal(2, back.Connects);
            Assert.Equal([XenbusState.Connected, XenbusState.Closed, XenbusState.Initialising, XenbusState.Connected], front.StateHistory);
            var frame = BlkfrontTests.Pattern(200, 3);
            Assert.Equal(NetifRsp.Okay, await front.SendAsync(frame));
            using var cts = new CancellationTokenSource(Bound);
            Assert.Equal(frame, (await front.ReceiveAsync(cts.Token)).Data);
        }
    }
}
