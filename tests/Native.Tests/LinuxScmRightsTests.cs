using System.Runtime.InteropServices;
using XenBackends.Native.Linux;

namespace XenBackends.Native.Tests;

public class LinuxScmRightsTests
{
    [Fact]
    public void A_memfd_and_an_eventfd_sent_over_the_socket_refer_to_the_same_objects()
    {
        var (left, right) = ScmRights.CreateSocketPair();
        using var l = left;
        using var r = right;
        using var memfd = MemFd.Create("passed", 1);
        using var ev = EventFd.Create();
        ScmRights.Send(left, "hello"u8, [memfd.Handle, ev.Handle]);

        var fds = new List<SafeFd>();
        var buffer = new byte[64];
        int n = ScmRights.Receive(right, buffer, fds);
        Assert.Equal("hello", System.Text.Encoding.ASCII.GetString(buffer, 0, n));
        Assert.Equal(2, fds.Count);
        Assert.NotEqual(memfd.Handle.Fd, fds[0].Fd);

        using var received = MemFd.Adopt(fds[0]);
        using var theirs = received.MapAll(writable: true);
        using var ours = memfd.MapAll(writable: false);
        theirs.Span[100] = 42;
        Assert.Equal(42, ours.Span[100]);

        using var receivedEvent = EventFd.Adopt(fds[1]);
        receivedEvent.Signal();
        Assert.True(ev.TryConsume(out ulong count));
        Assert.Equal(1ul, count);
    }

    [Fact]
    public void Message_without_fds_and_end_of_stream()
    {
        var (left, right) = ScmRights.CreateSocketPair();
        using var r = right;
        ScmRights.Send(left, [1, 2, 3], ReadOnlySpan<SafeHandle>.Empty);
        var fds = new List<SafeFd>();
        var buffer = new byte[8];
        Assert.Equal(3, ScmRights.Receive(right, buffer, fds));
        Assert.Empty(fds);
        left.Dispose();
        Assert.Equal(0, ScmRights.Receive(right, buffer, fds));
    }

    [Fact]
    public void An_oversized_message_is_an_error_not_a_silent_truncation()
    {
        var (left, right) = ScmRights.CreateSocketPair();
        using var l = left;
        using var r = right;
        ScmRights.Send(left, new byte[100], ReadOnlySpan<SafeHandle>.Empty);
        Assert.Throws<IOException>(() => ScmRights.Receive(right, new byte[10], []));
        Assert.Throws<ArgumentException>(() => ScmRights.Send(left, [], ReadOnlySpan<SafeHandle>.Empty));
    }
}
