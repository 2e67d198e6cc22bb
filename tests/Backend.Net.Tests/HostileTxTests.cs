using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Net.Tests;

/// <summary>
/// One test per row of netback-anchors 4.1: FATAL rows disable the queue, write the xenbus error node
/// and switch the backend to Closing while the process keeps serving; DROP rows answer every slot
/// (NETIF_RSP_ERROR, NULL for extras) and the ring keeps working for the next packet.
/// </summary>
public sealed class HostileTxTests
{
    private static async Task<NetHarness> UpAsync()
    {
        var h = await NetHarness.StartAsync();
        await h.BringUpAsync();
        return h;
    }

    private static async Task AssertFatalAsync(NetHarness h, string expected)
    {
        await h.WaitBackendStateAsync(XenbusState.Closing);
        string? error = await h.ReadErrorAsync();
        Assert.NotNull(error);
        Assert.Contains(expected, error);
        Assert.Equal(1, h.Stats().FatalResets);
        Assert.True(h.Net.Counters[0] is not null); // the device object still answers: nothing crashed
    }

    /// <summary>After a DROP the ring must still carry a good frame.</summary>
    private static void AssertRingStillWorks(NetHarness h)
    {
        h.Front.QueueFrame(Frames.Raw(60, Frames.TapMac, NetHarness.GuestMac));
        h.Front.Push();
        Assert.Equal(NetifRsp.Okay, h.Front.WaitTxResponses(1)[0].Status);
    }

    private static byte[] Data(int n) => Frames.Raw(Math.Max(n, 14), Frames.TapMac, NetHarness.GuestMac)[..n];

    [Fact]
    public async Task Row1_impossible_request_count_is_fatal()
    {
        await using var h = await UpAsync();
        h.Front.Tx.Raw.ReqProd = h.Front.Tx.ReqProdPvt + h.Front.Tx.Size + 1;
        h.Front.Kick();
        await AssertFatalAsync(h, "Impossible number of requests");
    }

    [Fact]
    public async Task Row4_missing_extra_info_is_fatal()
    {
        await using var h = await UpAsync();
        h.Front.PutTx(h.Front.StageTxData(Data(60)), 0, NetTxFlags.ExtraInfo, 60);
        h.Front.Push();
        await AssertFatalAsync(h, "Missing extra info");
    }

    [Theory]
    [InlineData(NetifExtraType.None)]
    [InlineData(NetifExtraType.Max)]
    public async Task Row5_invalid_extra_type_is_fatal(byte type)
    {
        await using var h = await UpAsync();
        h.Front.PutTx(h.Front.StageTxData(Data(60)), 0, NetTxFlags.ExtraInfo, 60);
        h.Front.PutExtra(new NetifExtraInfo { Type = type });
        h.Front.Push();
        await AssertFatalAsync(h, "Invalid extra type");
    }

    [Fact]
    public async Task Row6_multicast_add_beyond_64_addresses_is_answered_error()
    {
        await using var h = await UpAsync();
        for (int i = 0; i < 65; i++)
        {
            h.Front.PutTx(0, 0, NetTxFlags.ExtraInfo, 0);
            var extra = new NetifExtraInfo { Type = NetifExtraType.McastAdd };
            byte[] mac = [0x01, 0x00, 0x5E, 0x00, 0x00, (byte)i];
            for (int b = 0; b < 6; b++) extra.McastAddr[b] = mac[b];
            h.Front.PutExtra(extra);
            h.Front.Push();
            var r = h.Front.WaitTxResponses(2);
            Assert.Equal(i < 64 ? NetifRsp.Okay : NetifRsp.Error, r[0].Status);
            Assert.Equal(NetifRsp.Null, r[1].Status);
        }
        Assert.Equal(0, h.Stats().TxPackets); // control requests are not packets
        AssertRingStillWorks(h);
    }

    /// <summary>
    /// netback answers a multicast control request as soon as its extras are read and `continue`s
    /// before xenvif_count_requests, so NETTXF_more_data on it links no fragment: the next slot is
    /// the first slot of a new packet (the fuzz oracle once assumed otherwise).
    /// </summary>
    [Fact]
    public async Task Row6_more_data_on_a_multicast_request_links_no_fragment()
    {
        await using var h = await UpAsync();
        using var capture = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        h.Front.PutTx(0, 0, NetTxFlags.ExtraInfo | NetTxFlags.MoreData, 0);
        var extra = new NetifExtraInfo { Type = NetifExtraType.McastAdd };
        byte[] mac = [0x01, 0x00, 0x5E, 0x00, 0x00, 0x09];
        for (int b = 0; b < 6; b++) extra.McastAddr[b] = mac[b];
        h.Front.PutExtra(extra);
        var frame = Frames.Raw(60, Frames.TapMac, NetHarness.GuestMac);
        h.Front.PutTx(h.Front.StageTxData(frame), 0, 0, 60);
        h.Front.Push();
        var r = h.Front.WaitTxResponses(3);
        Assert.Equal(new short[] { NetifRsp.Okay, NetifRsp.Null, NetifRsp.Okay }, r.Select(x => x.Status));
        Assert.Equal(frame, capture.Receive(5000));
        Assert.Equal(1, h.Stats().TxPackets);
    }

    [Fact]
    public async Task Row7_more_data_without_a_posted_next_slot_is_fatal()
    {
        await using var h = await UpAsync();
        h.Front.PutTx(h.Front.StageTxData(Data(100)), 0, NetTxFlags.MoreData, 200);
        h.Front.Push();
        await AssertFatalAsync(h, "slots but only");
    }

    [Fact]
    public async Task Row8_more_than_20_further_slots_is_fatal()
    {
        await using var h = await UpAsync();
        h.Front.PutTx(h.Front.StageTxData(Data(60)), 0, NetTxFlags.MoreData, 60 + 22 * 10);
        for (int i = 0; i < 22; i++)
            h.Front.PutTx(h.Front.StageTxData(Data(10)), 0, i < 21 ? NetTxFlags.MoreData : (ushort)0, 10);
        h.Front.Push();
        await AssertFatalAsync(h, "Malicious frontend");
    }

    [Theory]
    [InlineData(19)]
    [InlineData(20)]
    public async Task Row9_19_or_20_further_slots_are_dropped_with_an_error_per_slot(int further)
    {
        await using var h = await UpAsync();
        h.Front.PutTx(h.Front.StageTxData(Data(60)), 0, NetTxFlags.MoreData, (ushort)(60 + further * 10));
        for (int i = 0; i < further; i++)
            h.Front.PutTx(h.Front.StageTxData(Data(10)), 0, i < further - 1 ? NetTxFlags.MoreData : (ushort)0, 10);
        h.Front.Push();
        var r = h.Front.WaitTxResponses(further + 1);
        Assert.All(r, x => Assert.Equal(NetifRsp.Error, x.Status));
        Assert.Equal(1, h.Stats().TxDrops);
        AssertRingStillWorks(h);
    }

    [Fact]
    public async Task Row10_fragment_larger_than_the_remaining_total_is_dropped()
    {
        await using var h = await UpAsync();
        h.Front.PutTx(h.Front.StageTxData(Data(60)), 0, NetTxFlags.MoreData, 100);
        h.Front.PutTx(h.Front.StageTxData(Data(200)), 0, 0, 200);
        h.Front.Push();
        var r = h.Front.WaitTxResponses(2);
        Assert.All(r, x => Assert.Equal(NetifRsp.Error, x.Status));
        AssertRingStillWorks(h);
    }

    [Fact]
    public async Task Row11_fragment_crossing_its_page_is_fatal()
    {
        await using var h = await UpAsync();
        h.Front.PutTx(h.Front.StageTxData(Data(60)), 0, NetTxFlags.MoreData, 60 + 200);
        h.Front.PutTx(h.Front.StageTxData(Data(200)), 4000, 0, 200);
        h.Front.Push();
        await AssertFatalAsync(h, "Cross page boundary");
    }

    [Fact]
    public async Task Row12_frame_shorter_than_an_ethernet_header_is_dropped()
    {
        await using var h = await UpAsync();
        h.Front.PutTx(h.Front.StageTxData(Data(13)), 0, 0, 13);
        h.Front.Push();
        Assert.Equal(NetifRsp.Error, h.Front.WaitTxResponses(1)[0].Status);
        Assert.Equal(1, h.Stats().TxDrops);
        AssertRingStillWorks(h);
    }

    [Fact]
    public async Task Row13_first_slot_crossing_its_page_is_fatal()
    {
        await using var h = await UpAsync();
        h.Front.PutTx(h.Front.StageTxData(Data(60)), 4090, 0, 60);
        h.Front.Push();
        await AssertFatalAsync(h, "txreq.offset");
    }

    [Fact]
    public async Task Row15_zero_length_fragments_are_answered_okay_and_not_sent()
    {
        await using var h = await UpAsync();
        using var capture = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        var frame = Frames.Raw(60, Frames.TapMac, NetHarness.GuestMac);
        h.Front.PutTx(h.Front.StageTxData(frame), 0, NetTxFlags.MoreData, 60);
        h.Front.PutTx(h.Front.StageTxData([]), 0, NetTxFlags.MoreData, 0);
        h.Front.PutTx(h.Front.StageTxData([]), 0, 0, 0);
        h.Front.Push();
        var r = h.Front.WaitTxResponses(3);
        Assert.All(r, x => Assert.Equal(NetifRsp.Okay, x.Status));
        Assert.Equal(frame, capture.Receive(5000));
    }

    [Theory]
    [InlineData(0, NetifGsoType.TcpV4)]
    [InlineData(1000, NetifGsoType.None)]
    [InlineData(1000, (byte)3)]
    public async Task Row17_bad_gso_extra_is_fatal(ushort size, byte type)
    {
        await using var h = await UpAsync();
        var frame = Frames.Tcp4(Frames.TapMac, NetHarness.GuestMac, Frames.GuestIp, Frames.FarIp, 1, 2, 0, Frames.Payload(100), Frames.Csum.PseudoOnly);
        h.Front.QueueFrame(frame, NetTxFlags.CsumBlank, new NetifExtraInfo { Type = NetifExtraType.Gso, GsoSize = size, GsoType = type });
        h.Front.Push();
        await AssertFatalAsync(h, "Bad GSO extra");
    }

    [Fact]
    public async Task Row18_failed_grant_copy_answers_that_slot_error_and_drops_the_packet()
    {
        await using var h = await UpAsync();
        using var capture = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        h.Front.PutTx(h.Front.StageTxData(Data(60)), 0, NetTxFlags.MoreData, 160);
        h.Front.PutTx(900, 0, 0, 100); // never granted
        h.Front.Push();
        var r = h.Front.WaitTxResponses(2);
        Assert.Equal(NetifRsp.Okay, r[0].Status);
        Assert.Equal(NetifRsp.Error, r[1].Status);
        Assert.Equal(1, h.Stats().TxErrors);
        Assert.Equal(0, h.Stats().TxPackets);
        AssertRingStillWorks(h);
        var seen = capture.Receive(5000);
        Assert.NotNull(seen);
        Assert.Equal(60, seen.Length); // the good frame, not the broken one
    }

    [Fact]
    public async Task Row19_csum_blank_on_a_frame_without_l4_is_dropped_silently_after_okay()
    {
        await using var h = await UpAsync();
        h.Front.QueueFrame(Frames.Raw(60, Frames.TapMac, NetHarness.GuestMac, etherType: 0x0806), NetTxFlags.CsumBlank);
        h.Front.Push();
        Assert.Equal(NetifRsp.Okay, h.Front.WaitTxResponses(1)[0].Status);
        Assert.Equal(1, h.Stats().TxDrops);
        Assert.Equal(0, h.Stats().TxPackets);
        AssertRingStillWorks(h);
    }

    [Fact]
    public async Task Connect_row_more_queues_than_advertised_is_refused()
    {
        await using var h = await NetHarness.StartAsync();
        await h.HotplugAsync();
        var features = new Dictionary<string, string>(NetHarness.LinuxNetfrontFeatures) { ["multi-queue-num-queues"] = "2" };
        await h.ConnectFrontendAsync(features);
        await h.WaitBackendStateAsync(XenbusState.Closing);
        Assert.Contains("multi-queue-num-queues", await h.ReadErrorAsync());
    }

    [Fact]
    public async Task Connect_row_request_rx_copy_missing_is_refused()
    {
        await using var h = await NetHarness.StartAsync();
        await h.HotplugAsync();
        await h.ConnectFrontendAsync(new Dictionary<string, string> { ["feature-sg"] = "1" });
        await h.WaitBackendStateAsync(XenbusState.Closing);
        Assert.Contains("request-rx-copy", await h.ReadErrorAsync());
    }
}
