using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Native.Tap;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Tests;

/// <summary>Guest-to-wire: frames the guest queues come out of the tap, in the test's namespace, exactly.</summary>
public sealed class GuestTxTests
{
    [Fact]
    public async Task Single_slot_frame_reaches_the_wire_byte_for_byte()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync();
        using var capture = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        var frame = Frames.Raw(200, Frames.TapMac, NetHarness.GuestMac);

        h.Front.QueueFrame(frame);
        h.Front.Push();

        var responses = h.Front.WaitTxResponses(1);
        Assert.Equal(NetifRsp.Okay, responses[0].Status);
        Assert.Equal(frame, capture.Receive(5000));
        Assert.Equal(1, h.Stats().TxPackets);
        Assert.Equal(200, h.Stats().TxBytes);
    }

    [Fact]
    public async Task Multi_slot_frame_with_a_zero_length_fragment_is_reassembled_exactly()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync(mtu: 9000);
        using var capture = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        var frame = Frames.Raw(5000, Frames.TapMac, NetHarness.GuestMac, seed: 9);

        // 100 bytes in the first slot (headers are gathered across slots), an empty slot, then the rest at odd offsets.
        var f = h.Front;
        f.PutTx(f.StageTxData(frame.AsSpan(0, 100), 50), 50, NetTxFlags.MoreData, 5000);
        f.PutTx(f.StageTxData([]), 0, NetTxFlags.MoreData, 0);
        f.PutTx(f.StageTxData(frame.AsSpan(100, 3000), 1000), 1000, NetTxFlags.MoreData, 3000);
        f.PutTx(f.StageTxData(frame.AsSpan(3100, 1900), 7), 7, 0, 1900);
        f.Push();

        var responses = f.WaitTxResponses(4);
        Assert.All(responses, r => Assert.Equal(NetifRsp.Okay, r.Status));
        Assert.Equal(frame, capture.Receive(5000));
    }

    [Fact]
    public async Task Csum_blank_udp_leaves_a_checksumless_tap_with_a_correct_checksum()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync();
        using var far = FarSide.Create(h);
        var frame = Frames.Udp4(Frames.TapMac, NetHarness.GuestMac, Frames.GuestIp, Frames.FarIp, 4000, 5000, Frames.Payload(300), Frames.Csum.PseudoOnly);
        Assert.False(Frames.Ipv4ChecksumsValid(frame)); // the guest really left the work to us

        h.Front.QueueFrame(frame, NetTxFlags.CsumBlank | NetTxFlags.DataValidated);
        h.Front.Push();

        Assert.Equal(NetifRsp.Okay, h.Front.WaitTxResponses(1)[0].Status);
        var wire = far.ReceiveIpv4(17, 5000);
        Assert.NotNull(wire);
        Assert.True(Frames.Ipv4ChecksumsValid(wire), "the forwarded UDP datagram must carry a correct checksum");
        Assert.Equal(frame.AsSpan(42).ToArray(), wire.AsSpan(42).ToArray());
    }

    [Fact]
    public async Task Gso_tcpv4_frame_is_segmented_by_the_kernel_with_correct_checksums()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync();
        using var far = FarSide.Create(h);
        const int mss = 1000;
        var payload = Frames.Payload(3500, 5);
        var frame = Frames.Tcp4(Frames.TapMac, NetHarness.GuestMac, Frames.GuestIp, Frames.FarIp, 4000, 5001, 1000, payload, Frames.Csum.PseudoOnly);
        var gso = new NetifExtraInfo { Type = NetifExtraType.Gso, GsoSize = mss, GsoType = NetifGsoType.TcpV4 };

        int slots = h.Front.QueueFrame(frame, NetTxFlags.CsumBlank | NetTxFlags.DataValidated, gso);
        h.Front.Push();

        var responses = h.Front.WaitTxResponses(slots);
        Assert.Equal(NetifRsp.Okay, responses[0].Status);
        Assert.Equal(NetifRsp.Null, responses[1].Status);
        var received = new List<byte>();
        for (int i = 0; i < 4; i++)
        {
            var seg = far.ReceiveIpv4(6, 5000);
            Assert.NotNull(seg);
            Assert.True(Frames.Ipv4ChecksumsValid(seg), $"segment {i} checksum");
            int segPayload = seg.Length - 54;
            Assert.True(segPayload <= mss, $"segment {i} carries {segPayload} bytes, more than the MSS");
            received.AddRange(seg.AsSpan(54).ToArray());
        }
        Assert.Equal(payload, received.ToArray());
    }
}

/// <summary>
/// A second, plain tap (no vnet header, so no offloads) behind the router the namespace becomes: frames
/// the guest sends to 10.200.2.2 are forwarded out of it, so the kernel must finish checksums and
/// segment GSO frames before we read them here.
/// </summary>
internal sealed class FarSide : IDisposable
{
    private readonly TapDevice _tap;

    private FarSide(TapDevice tap) => _tap = tap;

    public static FarSide Create(NetHarness h)
    {
        string name = "xbo" + h.Domid;
        var tap = TapDevice.Create(name, vnetHeader: false);
        try
        {
            h.Ns.Adopt(name);
            h.Ns.Ip("link", "set", name, "up");
            h.Ns.Ip("addr", "add", "10.200.2.1/24", "dev", name);
            h.Ns.Ip("neigh", "replace", "10.200.2.2", "lladdr", "02:00:00:00:02:02", "dev", name, "nud", "permanent");
            h.Ns.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1");
            return new FarSide(tap);
        }
        catch
        {
            tap.Dispose();
            throw;
        }
    }

    /// <summary>The next IPv4 frame of <paramref name="protocol"/> forwarded out of the far tap (others skipped).</summary>
    public byte[]? ReceiveIpv4(byte protocol, int timeoutMs)
    {
        var buffer = new byte[70000];
        long deadline = Environment.TickCount64 + timeoutMs;
        while (Environment.TickCount64 < deadline)
        {
            var status = _tap.Queues[0].Read(buffer, out int n);
            if (status == TapIoStatus.WouldBlock)
            {
                Thread.Sleep(2);
                continue;
            }
            Assert.Equal(TapIoStatus.Ok, status);
            if (n > 34 && buffer[12] == 0x08 && buffer[13] == 0 && buffer[23] == protocol)
                return buffer.AsSpan(0, n).ToArray();
        }
        return null;
    }

    public void Dispose() => _tap.Dispose();
}
