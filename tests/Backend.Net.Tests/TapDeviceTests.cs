using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Native.Linux;
using XenBackends.Native.Tap;

namespace XenBackends.Backend.Net.Tests;

/// <summary>The tap layer on its own, with real taps moved into a namespace the test makes.</summary>
public sealed class TapDeviceTests
{
    private static string NewName() => "xbt" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public void Tap_gets_mac_and_mtu_and_vanishes_when_its_last_fd_closes()
    {
        using var ns = new NetNamespace();
        string name = NewName();
        var tap = TapDevice.Create(name, vnetHeader: true);
        tap.SetMacAddress([0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        tap.SetMtu(9000);
        tap.SetUp(true);
        ns.Adopt(name);
        string shown = ns.Ip("link", "show", name);
        Assert.Contains("fe:ff:ff:ff:ff:ff", shown);
        Assert.Contains("mtu 9000", shown);
        tap.Dispose();
        Assert.DoesNotContain(name, ns.Ip("link", "show"));
    }

    [Fact]
    public void Frames_go_both_ways_with_their_vnet_header()
    {
        using var ns = new NetNamespace();
        string name = NewName();
        using var tap = TapDevice.Create(name, vnetHeader: true);
        ns.Adopt(name);
        ns.Exec("sysctl", "-qw", $"net/ipv6/conf/{name}/disable_ipv6=1");
        ns.Ip("link", "set", name, "up");
        using var sock = ns.Inside(() => PacketSocket.Open(name));
        var q = tap.Queues[0];
        var buffer = new byte[70000];
        Assert.Equal(TapIoStatus.WouldBlock, q.Read(buffer, out _));

        var frame = Frames.Raw(128, [0x02, 0, 0, 0, 0, 1], [0x02, 0, 0, 0, 0, 2]);
        var record = new byte[VirtioNetHeader.Size + frame.Length];
        frame.CopyTo(record, VirtioNetHeader.Size);
        Assert.Equal(TapIoStatus.Ok, q.Write(record));
        Assert.Equal(frame, sock.Receive(5000));

        sock.Send(frame);
        long deadline = Environment.TickCount64 + 5000;
        TapIoStatus status;
        int n;
        while ((status = q.Read(buffer, out n)) == TapIoStatus.WouldBlock && Environment.TickCount64 < deadline)
            Thread.Sleep(2);
        Assert.Equal(TapIoStatus.Ok, status);
        Assert.Equal(VirtioNetHeader.Size + frame.Length, n);
        Assert.Equal(0, VirtioNetHeader.ReadFrom(buffer).GsoType);
        Assert.Equal(frame, buffer.AsSpan(VirtioNetHeader.Size, frame.Length).ToArray());
    }

    [Fact]
    public void Writing_to_a_down_tap_reports_link_down_and_a_bad_header_is_rejected()
    {
        using var ns = new NetNamespace();
        string name = NewName();
        using var tap = TapDevice.Create(name, vnetHeader: true);
        ns.Adopt(name);
        var record = new byte[VirtioNetHeader.Size + 60];
        Assert.Equal(TapIoStatus.LinkDown, tap.Queues[0].Write(record));
        ns.Ip("link", "set", name, "up");
        // A GSO header claiming TCPv4 with a header length beyond the frame: the kernel refuses it.
        new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, GsoType = VirtioNetHeader.GsoTcpV4, GsoSize = 100, HdrLen = 5000, CsumStart = 5000, CsumOffset = 16 }.WriteTo(record);
        Assert.Equal(TapIoStatus.Rejected, tap.Queues[0].Write(record));
    }

    [Fact]
    public void Multi_queue_tap_has_one_fd_per_queue_and_takes_offloads()
    {
        using var ns = new NetNamespace();
        string name = NewName();
        using var tap = TapDevice.Create(name, queueCount: 1, vnetHeader: true, multiQueue: true);
        tap.EnsureQueues(3);
        Assert.Equal(3, tap.Queues.Count);
        Assert.Equal(3, tap.Queues.Select(q => q.Handle.Fd).Distinct().Count());
        tap.SetOffloads(TapOffloads.Checksum | TapOffloads.Tso4 | TapOffloads.Tso6);
        Assert.Throws<ArgumentException>(() => tap.SetOffloads(TapOffloads.Tso4));
        ns.Adopt(name);
        Assert.Contains(name, ns.Ip("link", "show", name));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("has space")]
    [InlineData("sixteen-chars-xx")]
    public void Bad_interface_names_are_refused(string name) =>
        Assert.Throws<ArgumentException>(() => TapDevice.Create(name));

    [Fact]
    public void Opening_a_name_already_held_by_a_single_queue_tap_fails_clearly()
    {
        string name = NewName();
        using var first = TapDevice.Create(name);
        var e = Assert.ThrowsAny<XenBackends.Native.XenNativeException>(() => TapDevice.Create(name));
        Assert.Contains("TUNSETIFF", e.Message);
        Assert.Single(first.Queues);
    }
}
