using System.Net.Sockets;
using System.Text;
using XenBackends.Service.Systemd;

namespace XenBackends.Service.Tests;

public sealed class SdNotifierTests
{
    private static Socket Listen(string address)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        s.Bind(new UnixDomainSocketEndPoint(address));
        return s;
    }

    private static string Receive(Socket s)
    {
        var buffer = new byte[4096];
        s.ReceiveTimeout = 5000;
        return Encoding.UTF8.GetString(buffer, 0, s.Receive(buffer));
    }

    [Fact]
    public void Sends_each_state_as_one_datagram_to_a_path_socket()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("xb-notify-").FullName, "notify");
        using var manager = Listen(path);
        using var notifier = new SdNotifier(path);
        Assert.True(notifier.Notify("READY=1\nSTATUS=2 guests"));
        Assert.True(notifier.Notify("WATCHDOG=1"));
        Assert.Equal("READY=1\nSTATUS=2 guests", Receive(manager));
        Assert.Equal("WATCHDOG=1", Receive(manager));
    }

    [Fact]
    public void An_at_sign_names_an_abstract_socket()
    {
        string name = "xb-test-" + Guid.NewGuid().ToString("N");
        using var manager = Listen("\0" + name);
        using var notifier = new SdNotifier("@" + name);
        Assert.True(notifier.Notify("READY=1"));
        Assert.Equal("READY=1", Receive(manager));
    }

    [Fact]
    public void Without_NOTIFY_SOCKET_nothing_is_sent_and_a_vanished_manager_is_not_fatal()
    {
        using var none = new SdNotifier(null);
        Assert.False(none.Enabled);
        Assert.False(none.Notify("READY=1"));
        using var gone = new SdNotifier(Path.Combine(Path.GetTempPath(), "xb-no-manager-" + Guid.NewGuid().ToString("N")));
        Assert.False(gone.Notify("READY=1"));
    }

    [Fact]
    public async Task A_manager_that_stops_reading_drops_notifications_instead_of_blocking_the_sender()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("xb-notify-").FullName, "notify");
        using var manager = Listen(path);
        using var notifier = new SdNotifier(path);
        // Far more than net.unix.max_dgram_qlen (10 by default): a blocking send hangs at the 11th.
        var sent = await Task.Run(() => Enumerable.Range(0, 1000).Select(i => notifier.Notify($"STATUS={i}")).ToList())
            .WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(sent[0]);
        Assert.Contains(false, sent);
        Assert.Equal("STATUS=0", Receive(manager));
    }

    [Theory]
    [InlineData("30000000", null, 100, 15_000)]
    [InlineData("30000000", "100", 100, 15_000)]
    [InlineData("30000000", "101", 100, -1)]
    [InlineData("0", null, 100, -1)]
    [InlineData("junk", null, 100, -1)]
    [InlineData(null, null, 100, -1)]
    public void The_watchdog_is_fed_at_half_WatchdogSec_and_only_for_this_process(string? usec, string? pid, int ownPid, int expectedMs)
    {
        var interval = SdNotifier.WatchdogInterval(usec, pid, ownPid);
        Assert.Equal(expectedMs < 0 ? null : TimeSpan.FromMilliseconds(expectedMs), interval);
    }
}
