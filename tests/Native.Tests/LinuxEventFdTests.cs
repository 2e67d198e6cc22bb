using XenBackends.Native.Linux;

namespace XenBackends.Native.Tests;

public class LinuxEventFdTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public void Signals_accumulate_until_consumed_once()
    {
        using var e = EventFd.Create();
        Assert.False(e.TryConsume(out _));
        e.Signal();
        e.Signal(2);
        Assert.True(e.TryConsume(out ulong count));
        Assert.Equal(3ul, count);
        Assert.False(e.TryConsume(out _));
    }

    [Fact]
    public async Task WaitAsync_completes_when_signalled_from_another_thread()
    {
        using var e = EventFd.Create();
        var wait = e.WaitAsync(CancellationToken.None).AsTask();
        Assert.False(wait.IsCompleted);
        _ = Task.Run(() => e.Signal());
        Assert.Equal(1ul, await wait.WaitAsync(Bound));
    }

    [Fact]
    public async Task WaitAsync_is_cancelled_and_the_fd_can_be_waited_on_again()
    {
        using var e = EventFd.Create();
        using var cts = new CancellationTokenSource();
        var wait = e.WaitAsync(cts.Token).AsTask();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Bound));
        e.Signal();
        Assert.Equal(1ul, await e.WaitAsync(CancellationToken.None).AsTask().WaitAsync(Bound));
    }

    [Fact]
    public async Task A_second_concurrent_waiter_on_one_fd_is_refused()
    {
        using var e = EventFd.Create();
        using var cts = new CancellationTokenSource();
        var first = e.WaitAsync(cts.Token).AsTask();
        await Assert.ThrowsAsync<InvalidOperationException>(() => e.WaitAsync(CancellationToken.None).AsTask());
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.WaitAsync(Bound));
    }

    [Fact]
    public async Task EpollSet_reports_the_token_of_the_readable_member()
    {
        using var set = new EpollSet();
        using var a = EventFd.Create();
        using var b = EventFd.Create();
        set.Add(a.Handle, 11);
        set.Add(b.Handle, 22);
        Assert.False(set.TryTake(out _));
        var wait = set.WaitAsync(CancellationToken.None);
        b.Signal();
        await wait.WaitAsync(Bound);
        Assert.True(set.TryTake(out ulong token));
        Assert.Equal(22ul, token);
        set.Remove(b.Handle);
        Assert.False(set.TryTake(out _));
        set.Remove(b.Handle); // not a member any more: harmless
    }
}

public class LinuxEventFdAdoptTests
{
    [Fact]
    public void Adopt_refuses_an_fd_that_is_not_an_eventfd()
    {
        using var memfd = MemFd.Create("not-an-eventfd", 1);
        var dup = memfd.Handle.Duplicate();
        Assert.Throws<ArgumentException>(() => EventFd.Adopt(dup));
        dup.Dispose();
    }

    [Fact]
    public void Adopted_duplicate_shares_the_counter()
    {
        using var e = EventFd.Create();
        using var other = EventFd.Adopt(e.Handle.Duplicate());
        other.Signal(5);
        Assert.True(e.TryConsume(out ulong n));
        Assert.Equal(5ul, n);
    }
}
