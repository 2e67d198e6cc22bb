using System.Globalization;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Net.Tests.Integration;

/// <summary>
/// Two independently written sides agreeing: the simulated host's libxl-like toolstack and Linux-like
/// netfront against our real NetDevice through BackendLifecycle, with frames crossing a real tap in a
/// test namespace both ways.
/// </summary>
public sealed class ToolstackNetfrontTests
{
    private static readonly TimeSpan Connect = TimeSpan.FromSeconds(20);

    private static byte[] MacBytes(string mac) => [.. mac.Split(':').Select(b => byte.Parse(b, NumberStyles.HexNumber, CultureInfo.InvariantCulture))];

    /// <summary>One frame from every guest queue reaches the wire, and frames from the wire reach the guest.</summary>
    private static async Task AssertTrafficBothWaysAsync(ToolstackFixture f, SimulatedNetfront front, string vif, byte seed)
    {
        byte[] guestMac = MacBytes(front.Mac);
        using var wire = f.Ns.Inside(() => PacketSocket.Open(vif));
        for (int q = 0; q < front.NumQueues; q++)
        {
            var frame = Frames.Raw(200 + q, Frames.TapMac, guestMac, seed: (byte)(seed + q));
            Assert.Equal(NetifRsp.Okay, await front.SendAsync(frame, new NetfrontSendOptions { Queue = q }));
            Assert.Equal(frame, wire.Receive(5000));
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        for (int i = 0; i < 4; i++)
        {
            var frame = Frames.Raw(300 + i, guestMac, Frames.TapMac, seed: (byte)(seed + 10 + i));
            wire.Send(frame);
            Assert.Equal(frame, (await front.ReceiveAsync(cts.Token)).Data);
        }
    }

    [Fact]
    public async Task Toolstack_nic_and_linux_like_netfront_connect_with_two_queues_and_move_frames_both_ways()
    {
        await using var f = await ToolstackFixture.CreateAsync(maxQueues: 4);
        var nic = await f.Toolstack.AddNicAsync(f.Domid, new NicSpec());
        await using var front = await SimulatedNetfront.AttachAsync(f.Guest, nic.DevId, new NetfrontOptions { MaxQueues = 2 });
        await front.WaitConnectedAsync(Connect);
        await f.WaitBackendConnectedAsync(nic);

        Assert.Equal(2, front.NumQueues);
        Assert.True(front.SplitEventChannels);
        Assert.True(front.BackendSg && front.BackendGsoTcpV4 && front.BackendGsoTcpV6 && front.BackendIpv6CsumOffload);
        var device = f.Device(nic.Path);
        Assert.Equal($"vif{f.Domid}.{nic.DevId}", device.InterfaceName);
        Assert.Equal(MacBytes(front.Mac), device.GuestMac);
        await AssertTrafficBothWaysAsync(f, front, device.InterfaceName!, 1);
        Assert.Equal(2, device.Counters.Count);
    }

    [Fact]
    public async Task Frontend_close_then_reconnect_serves_again_on_the_same_tap()
    {
        await using var f = await ToolstackFixture.CreateAsync(maxQueues: 2);
        var nic = await f.Toolstack.AddNicAsync(f.Domid, new NicSpec());
        await using var front = await SimulatedNetfront.AttachAsync(f.Guest, nic.DevId, new NetfrontOptions { MaxQueues = 2 });
        await front.WaitConnectedAsync(Connect);
        await f.WaitBackendConnectedAsync(nic);
        string vif = f.Device(nic.Path).InterfaceName!;
        await AssertTrafficBothWaysAsync(f, front, vif, 1);

        await front.CloseAsync(Connect);
        // The lifecycle releases the rings when the frontend reaches Closed, then reports Closed itself.
        await f.WaitBackendStateAsync(nic, XenbusState.Closed);
        Assert.Empty(f.Device(nic.Path).Counters); // rings released
        await front.ReconnectAsync();
        await front.WaitConnectedAsync(Connect);
        await f.WaitBackendConnectedAsync(nic);

        Assert.True(f.IsServing(nic.Path));
        Assert.Equal(vif, f.Device(nic.Path).InterfaceName);
        await AssertTrafficBothWaysAsync(f, front, vif, 50);
    }

    [Fact]
    public async Task Detach_through_the_toolstack_closes_the_device_and_removes_the_tap()
    {
        await using var f = await ToolstackFixture.CreateAsync(maxQueues: 1);
        var nic = await f.Toolstack.AddNicAsync(f.Domid, new NicSpec { Rate = (100_000, 50_000) });
        await using var front = await SimulatedNetfront.AttachAsync(f.Guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 });
        await front.WaitConnectedAsync(Connect);
        await f.WaitBackendConnectedAsync(nic);
        var device = f.Device(nic.Path);
        string vif = device.InterfaceName!;
        Assert.Equal(((ulong)100_000, (ulong)50_000), device.Rate);
        Assert.Contains(vif, f.Ns.Ip("link", "show"));

        await f.Toolstack.DetachNicAsync(nic);

        long deadline = Environment.TickCount64 + 10_000;
        while (f.IsServing(nic.Path) || f.Ns.Ip("link", "show").Contains(vif, StringComparison.Ordinal))
        {
            Assert.True(Environment.TickCount64 < deadline, $"still serving or tap {vif} still present; log: {f.Log}");
            await Task.Delay(20);
        }
        Assert.Null(await f.Toolstack.Dom0.TryReadStringAsync(nic.BackendPath + "/state"));
        Assert.Equal(XenbusState.Closed, front.State);
    }
}
