using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Net.Tests;

/// <summary>The xenstore side: tap before InitWait, the advertised keys, the hotplug-status gate, vifname, teardown.</summary>
public sealed class NetDeviceHandshakeTests
{
    [Fact]
    public async Task Tap_exists_at_InitWait_and_features_are_published()
    {
        await using var h = await NetHarness.StartAsync();
        Assert.Equal($"vif{h.Domid}.0", h.Net.InterfaceName);
        Assert.Contains(h.Net.InterfaceName!, Shell.Run("ip", "link", "show", h.Net.InterfaceName!));
        var expected = new Dictionary<string, string>
        {
            ["feature-sg"] = "1", ["feature-gso-tcpv4"] = "1", ["feature-gso-tcpv6"] = "1", ["feature-ipv6-csum-offload"] = "1",
            ["feature-rx-copy"] = "1", ["feature-rx-flip"] = "0", ["feature-split-event-channels"] = "1",
            ["multi-queue-max-queues"] = "1", ["feature-ctrl-ring"] = "1", ["feature-multicast-control"] = "1",
            ["feature-dynamic-multicast-control"] = "1",
        };
        foreach (var (k, v) in expected)
            Assert.Equal(v, await h.Store.TryReadStringAsync(h.BackendPath + "/" + k));
    }

    [Fact]
    public async Task Connected_waits_for_hotplug_status_connected()
    {
        await using var h = await NetHarness.StartAsync();
        await h.ConnectFrontendAsync();
        // The frontend is Connected and its keys are valid, but vif-bridge has not reported yet.
        await Task.Delay(300);
        Assert.Equal(XenbusState.InitWait, await h.Device.ReadBackendStateAsync());
        await h.HotplugAsync();
        await h.WaitBackendStateAsync(XenbusState.Connected);
        Assert.Equal(NetHarness.GuestMac, h.Net.GuestMac);
    }

    [Fact]
    public async Task Vifname_from_the_toolstack_names_the_tap()
    {
        string name = "xbv" + Guid.NewGuid().ToString("N")[..6];
        await using var h = await NetHarness.StartAsync(vifname: name);
        Assert.Equal(name, h.Net.InterfaceName);
        await h.BringUpAsync();
        Assert.Contains(name, h.Ns.Ip("link", "show", name));
    }

    [Fact]
    public async Task Split_event_channels_carry_traffic()
    {
        await using var h = await NetHarness.StartAsync(split: true);
        await h.BringUpAsync();
        Assert.NotEqual(h.Front.TxPort, h.Front.RxPort);
        h.Front.PostRx(4);
        using var sock = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        var frame = Frames.Raw(100, NetHarness.GuestMac, Frames.TapMac);
        sock.Send(frame);
        Assert.Equal(frame, h.Front.Receive()?.Data);
        var tx = Frames.Raw(90, Frames.TapMac, NetHarness.GuestMac);
        h.Front.QueueFrame(tx);
        h.Front.Push();
        h.Front.WaitTxResponses(1);
        Assert.Equal(tx, sock.Receive(5000));
    }

    [Fact]
    public async Task Rate_is_parsed_and_the_tap_goes_away_with_the_device()
    {
        var h = await NetHarness.StartAsync();
        await h.Store.WriteAsync(h.BackendPath + "/rate", "125000,50000");
        await h.BringUpAsync();
        Assert.Equal((125000UL, 50000UL), h.Net.Rate);
        string name = h.Net.InterfaceName!;
        var ns = h.Ns.Name;
        await h.Net.DisposeAsync();
        Assert.DoesNotContain(name, Shell.Run("ip", "-n", ns, "link", "show"));
        await h.DisposeAsync();
    }

    [Theory]
    [InlineData("02:00:00:00:00:07", true)]
    [InlineData("02:00:00:00:00", false)]
    [InlineData("02-00-00-00-00-07", false)]
    [InlineData("zz:00:00:00:00:07", false)]
    public void Mac_parsing(string text, bool ok) => Assert.Equal(ok, NetDevice.ParseMac(text) is not null);
}
