using System.Buffers.Binary;
using XenBackends.Backend.Net.Control;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost;

namespace XenBackends.Backend.Net.Tests.Control;

/// <summary>Which bytes of a frame are hashed for each enabled hash type ("maximal type wins"), and which queue that picks.</summary>
public sealed class RxHashTests : IDisposable
{
    private readonly SimulatedXenHost _host = new();
    private readonly SimulatedDomain _guest;
    private readonly CtrlRequestProcessor _ctrl;

    public RxHashTests()
    {
        _guest = _host.CreateDomain(3, 16);
        _ctrl = new CtrlRequestProcessor(3, _host.CreateGrantMapper(0), numQueues: 4);
    }

    public void Dispose() => _host.Dispose();

    private RxHashSettings Configure(uint types, params uint[] mapping)
    {
        uint Grant(ReadOnlySpan<byte> data)
        {
            uint frame = _guest.Memory.AllocatePage();
            data.CopyTo(_guest.Memory.Page(frame));
            return _guest.Grants.GrantAccess(0, frame, readOnly: true);
        }
        Send(NetifCtrlType.SetHashAlgorithm, NetifCtrlHashAlgorithm.Toeplitz);
        Send(NetifCtrlType.SetHashKey, Grant(ToeplitzTests.RssKey), 40);
        Send(NetifCtrlType.SetHashFlags, types);
        if (mapping.Length > 0)
        {
            Send(NetifCtrlType.SetHashMappingSize, (uint)mapping.Length);
            Send(NetifCtrlType.SetHashMapping, Grant(System.Runtime.InteropServices.MemoryMarshal.AsBytes(mapping.AsSpan())), (uint)mapping.Length, 0);
        }
        return _ctrl.Settings;
    }

    private void Send(ushort type, uint d0 = 0, uint d1 = 0, uint d2 = 0)
    {
        var request = new XenNetifCtrlRequest { Type = type };
        request.Data[0] = d0;
        request.Data[1] = d1;
        request.Data[2] = d2;
        Assert.Equal(NetifCtrlStatus.Success, _ctrl.Process(request).Status);
    }

    private static byte[] Tcp4() => Frames.Tcp4(NetHarness.GuestMac, Frames.TapMac, Frames.HostIp, Frames.GuestIp, 1234, 80, 1, Frames.Payload(10), Frames.Csum.Full);

    private static byte[] Udp4() => Frames.Udp4(NetHarness.GuestMac, Frames.TapMac, Frames.HostIp, Frames.GuestIp, 1234, 53, Frames.Payload(10), Frames.Csum.Full);

    private static uint Expected(byte[] frame, int l3, bool ports) =>
        ToeplitzReference.Hash(ToeplitzTests.RssKey, ports ? [.. frame.AsSpan(l3 + 12, 8), .. frame.AsSpan(l3 + 20, 4)] : frame.AsSpan(l3 + 12, 8));

    [Fact]
    public void Tcp_uses_the_four_tuple_when_its_type_is_on_and_the_address_pair_otherwise()
    {
        var frame = Tcp4();
        Assert.True(RxHash.TryHash(Configure(NetifCtrlHashType.Ipv4 | NetifCtrlHashType.Ipv4Tcp), frame, out uint h, out byte t));
        Assert.Equal((byte)NetifCtrlHashType.Ipv4TcpBit, t);
        Assert.Equal(Expected(frame, 14, ports: true), h);

        Assert.True(RxHash.TryHash(Configure(NetifCtrlHashType.Ipv4), frame, out h, out t));
        Assert.Equal((byte)NetifCtrlHashType.Ipv4Bit, t);
        Assert.Equal(Expected(frame, 14, ports: false), h);
    }

    [Fact]
    public void Udp_falls_back_to_the_address_pair_or_is_not_hashed_with_only_the_tcp_type()
    {
        var frame = Udp4();
        Assert.False(RxHash.TryHash(Configure(NetifCtrlHashType.Ipv4Tcp), frame, out _, out _));
        Assert.True(RxHash.TryHash(Configure(NetifCtrlHashType.Ipv4 | NetifCtrlHashType.Ipv4Tcp), frame, out uint h, out byte t));
        Assert.Equal((byte)NetifCtrlHashType.Ipv4Bit, t);
        Assert.Equal(Expected(frame, 14, ports: false), h);
    }

    [Fact]
    public void A_tcp_fragment_has_no_ports_to_hash_and_ipv6_or_non_ip_frames_need_their_own_types()
    {
        var fragment = Tcp4();
        BinaryPrimitives.WriteUInt16BigEndian(fragment.AsSpan(20), 0x2000); // more fragments
        var settings = Configure(NetifCtrlHashType.Ipv4 | NetifCtrlHashType.Ipv4Tcp);
        Assert.True(RxHash.TryHash(settings, fragment, out uint h, out byte t));
        Assert.Equal((byte)NetifCtrlHashType.Ipv4Bit, t);
        Assert.Equal(Expected(fragment, 14, ports: false), h);

        var ipv6 = new byte[80];
        BinaryPrimitives.WriteUInt16BigEndian(ipv6.AsSpan(12), 0x86DD);
        ipv6[14] = 0x60;
        Assert.False(RxHash.TryHash(settings, ipv6, out _, out _));
        Assert.False(RxHash.TryHash(settings, Frames.Raw(60, NetHarness.GuestMac, Frames.TapMac), out _, out _));
    }

    [Fact]
    public void Queue_comes_from_the_table_at_hash_mod_size_or_hash_mod_queues_without_one()
    {
        var frame = Tcp4();
        uint hash = Expected(frame, 14, ports: true);
        var modular = Configure(NetifCtrlHashType.Ipv4Tcp);
        Assert.Equal((int)(hash % 4), RxHash.SelectQueue(modular, true, hash, 4));

        var mapped = Configure(NetifCtrlHashType.Ipv4Tcp, 2, 3, 1);
        Assert.Equal((int)new uint[] { 2, 3, 1 }[hash % 3], RxHash.SelectQueue(mapped, true, hash, 4));
        // An unhashable frame counts as hash 0, as netback's cleared skb hash does.
        Assert.Equal(2, RxHash.SelectQueue(mapped, false, 12345, 4));
    }
}
