using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Tests;

/// <summary>
/// feature-dynamic-multicast-control: the frontend turns filtering on and off at any time through
/// request-multicast-control, and subscribes with MCAST_ADD/DEL extras on its tx ring.
/// </summary>
public sealed class MulticastControlTests
{
    private static readonly byte[] Group = [0x01, 0x00, 0x5E, 0x00, 0x00, 0x07];
    private static readonly byte[] Broadcast = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

    private static void SendControl(NetHarness h, byte type, byte[] mac)
    {
        h.Front.PutTx(0, 0, NetTxFlags.ExtraInfo, 0);
        var extra = new NetifExtraInfo { Type = type };
        for (int b = 0; b < 6; b++)
            extra.McastAddr[b] = mac[b];
        h.Front.PutExtra(extra);
        h.Front.Push();
        var r = h.Front.WaitTxResponses(2);
        Assert.Equal(NetifRsp.Okay, r[0].Status);
        Assert.Equal(NetifRsp.Null, r[1].Status);
    }

    /// <summary>The group frame is filtered: counted as a drop, and the broadcast sent after it is the next thing the guest sees.</summary>
    private static async Task AssertFilteredAsync(NetHarness h, PacketSocket inject, byte seed)
    {
        long drops = h.Stats().RxDrops;
        inject.Send(Frames.Raw(80, Group, Frames.TapMac, seed: seed));
        await WaitUntilAsync(() => h.Stats().RxDrops == drops + 1);
        var marker = Frames.Raw(81, Broadcast, Frames.TapMac, seed: seed);
        inject.Send(marker);
        Assert.Equal(marker, h.Front.Receive()?.Data);
    }

    private static void AssertDelivered(NetHarness h, PacketSocket inject, byte seed)
    {
        var frame = Frames.Raw(80, Group, Frames.TapMac, seed: seed);
        inject.Send(frame);
        Assert.Equal(frame, h.Front.Receive()?.Data);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        long deadline = Environment.TickCount64 + 5000;
        while (!condition())
        {
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException("condition not reached");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task Request_multicast_control_toggles_filtering_live_and_add_del_subscribe()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync();
        h.Front.PostRx(64);
        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));

        AssertDelivered(h, inject, 1); // no filtering asked for

        await h.Store.WriteAsync(h.FrontendPath + "/request-multicast-control", "1");
        await WaitUntilAsync(() => h.Net.MulticastControl);
        await AssertFilteredAsync(h, inject, 2);

        SendControl(h, NetifExtraType.McastAdd, Group);
        AssertDelivered(h, inject, 3);

        SendControl(h, NetifExtraType.McastDel, Group);
        await AssertFilteredAsync(h, inject, 4);

        await h.Store.WriteAsync(h.FrontendPath + "/request-multicast-control", "0");
        await WaitUntilAsync(() => !h.Net.MulticastControl);
        AssertDelivered(h, inject, 5);
    }

    [Fact]
    public async Task Filtering_requested_at_connect_applies_from_the_first_frame()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync(new Dictionary<string, string>(NetHarness.LinuxNetfrontFeatures) { ["request-multicast-control"] = "1" });
        h.Front.PostRx(16);
        using var inject = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));
        Assert.True(h.Net.MulticastControl);
        await AssertFilteredAsync(h, inject, 1);
    }
}
