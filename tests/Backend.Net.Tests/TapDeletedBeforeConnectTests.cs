using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Net.Tests;

/// <summary>
/// The tap deleted while no queue thread is running to notice (between prepare and the guest's
/// connect, where vif-bridge and an administrator both act). Connect must find that out itself:
/// the fds it holds are bound to nothing, so TUNSETQUEUE answers EINVAL (a multi-queue tap) and
/// TUNSETOFFLOAD EBADFD, and before the fix either one failed the whole connect as fatal.
/// </summary>
public sealed class TapDeletedBeforeConnectTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task A_tap_deleted_before_the_guest_connects_is_recreated_by_the_connect(int maxQueues)
    {
        // A name of our own: the re-created tap appears in this process's namespace, where other test runs make taps too.
        string name = "xbd" + Guid.NewGuid().ToString("N")[..6];
        await using var h = await NetHarness.StartAsync(vifname: name, maxQueues: maxQueues);
        await h.HotplugAsync();
        int oldIndex = int.Parse(h.Ns.Ip("-o", "link", "show", name).Split(':')[0]);
        h.Ns.Ip("link", "del", name);

        // A single-queue frontend: a multi-queue tap must detach its second fd, which is what failed.
        await h.ConnectFrontendAsync();
        await h.WaitBackendStateAsync(XenbusState.Connected);
        Assert.Null(h.Net.LastFatalError);
        Assert.True(h.Net.TapPresent);
        Assert.Equal(1, h.Net.TapLosses);
        Assert.Equal(1, h.Net.TapRecreations);
        lock (h.Log)
            Assert.Contains(h.Log, l => l.Contains($"tap {name} was deleted under the backend", StringComparison.Ordinal));

        // A new interface (here, in the backend's namespace, as no re-plumbing hook is set) that carries the guest's frames.
        int newIndex = int.Parse(File.ReadAllText($"/sys/class/net/{name}/ifindex").Trim());
        Assert.NotEqual(oldIndex, newIndex);
        h.Ns.Adopt(name);
        h.Ns.Exec("sysctl", "-qw", $"net/ipv6/conf/{name}/disable_ipv6=1");
        h.Ns.Ip("link", "set", name, "up");
        using var sock = h.Ns.Inside(() => PacketSocket.Open(name));
        var tx = Frames.Raw(90, Frames.TapMac, NetHarness.GuestMac);
        h.Front.QueueFrame(tx);
        h.Front.Push();
        h.Front.WaitTxResponses(1);
        byte[]? seen;
        do
            seen = sock.Receive(5000);
        while (seen is not null && !seen.AsSpan().SequenceEqual(tx));
        Assert.Equal(tx, seen);
    }
}
