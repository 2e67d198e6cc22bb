using System.Diagnostics;
using XenBackends.Native.Linux;
using XenBackends.Native.Tap;

namespace XenBackends.Native.Tests;

/// <summary>The queue thread's epoll: tokens, pausing one descriptor, and the microsecond wait coalescing relies on.</summary>
public sealed class QueuePollTests
{
    [Fact]
    public void A_paused_descriptor_does_not_wake_the_wait_until_it_is_resumed()
    {
        using var poll = new QueuePoll();
        using var tap = EventFd.Create();
        using var kick = EventFd.Create();
        poll.Add(tap.Handle.Fd, 1);
        poll.Add(kick.Handle.Fd, 5);
        tap.Signal();
        Assert.Equal(1UL << 1, poll.Wait(0));

        poll.Pause(tap.Handle.Fd, 1);
        Assert.Equal(0UL, poll.Wait(0));
        kick.Signal();
        Assert.Equal(1UL << 5, poll.Wait(0)); // the others still wake it
        Assert.True(kick.TryConsume(out _));

        poll.Resume(tap.Handle.Fd, 1);
        Assert.Equal(1UL << 1, poll.Wait(0)); // level-triggered: still readable, reported again
    }

    [Fact]
    public void The_microsecond_wait_returns_at_once_when_ready_and_after_its_timeout_otherwise()
    {
        using var poll = new QueuePoll();
        using var e = EventFd.Create();
        poll.Add(e.Handle.Fd, 3);
        Assert.True(QueuePoll.TrySetThreadTimerSlack(1000));

        var clock = Stopwatch.StartNew();
        Assert.Equal(0UL, poll.WaitMicroseconds(300));
        // It waits its time (how late it may return depends on the machine's load, so only a loose cap).
        Assert.InRange(clock.Elapsed.TotalMilliseconds, 0.29, 2000);

        e.Signal();
        clock.Restart();
        Assert.Equal(1UL << 3, poll.WaitMicroseconds(5_000_000));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2));
    }
}
