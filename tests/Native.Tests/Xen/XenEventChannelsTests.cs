using Tmds.Linux;
using XenBackends.Native.Xen;

namespace XenBackends.Native.Tests.Xen;

public sealed class XenEventChannelsTests : IDisposable
{
    private readonly PipeEvtchn _library = new();
    private readonly XenEventChannels _channels;

    public XenEventChannelsTests() => _channels = XenEventChannels.Open("/dev/null", _library);

    public void Dispose() => _channels.Dispose();

    [Fact]
    public void TryGetPending_with_nothing_pending_returns_false_without_calling_pending()
    {
        // Pending() on an empty pipe would block this test forever: poll(0) must come first.
        Assert.False(_channels.TryGetPending(out _));
        Assert.Equal(0, _library.PendingCalls);
    }

    [Fact]
    public void TryGetPending_returns_each_raised_port_once()
    {
        _library.Raise(5);
        _library.Raise(9);
        Assert.True(_channels.TryGetPending(out uint first));
        Assert.True(_channels.TryGetPending(out uint second));
        Assert.False(_channels.TryGetPending(out _));
        Assert.Equal([5u, 9u], new[] { first, second });
    }

    [Fact]
    public async Task WaitPendingAsync_completes_when_a_port_is_raised_later()
    {
        var wait = _channels.WaitPendingAsync(CancellationToken.None);
        Assert.False(wait.IsCompleted); // nothing was raised yet, so it cannot have completed
        _library.Raise(17);
        Assert.Equal(17u, await wait);
    }

    [Fact]
    public async Task WaitPendingAsync_returns_an_already_pending_port_at_once()
    {
        _library.Raise(3);
        var wait = _channels.WaitPendingAsync(CancellationToken.None);
        Assert.True(wait.IsCompletedSuccessfully);
        Assert.Equal(3u, await wait);
    }

    [Fact]
    public async Task Concurrent_waiters_each_get_a_distinct_port()
    {
        var a = _channels.WaitPendingAsync(CancellationToken.None).AsTask();
        var b = _channels.WaitPendingAsync(CancellationToken.None).AsTask();
        _library.Raise(1);
        _library.Raise(2);
        uint[] ports = await Task.WhenAll(a, b);
        Assert.Equal([1u, 2u], ports.Order());
    }

    [Fact]
    public async Task Cancelling_a_wait_ends_it_and_later_ports_still_arrive()
    {
        using var cts = new CancellationTokenSource();
        var wait = _channels.WaitPendingAsync(cts.Token);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await wait);

        _library.Raise(4);
        Assert.Equal(4u, await _channels.WaitPendingAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Already_cancelled_token_is_honoured_even_with_a_port_pending()
    {
        _library.Raise(4);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            async () => await _channels.WaitPendingAsync(new CancellationToken(canceled: true)));
        Assert.True(_channels.TryGetPending(out uint port)); // not consumed by the cancelled wait
        Assert.Equal(4u, port);
    }

    [Fact]
    public async Task Disposing_ends_a_pending_wait_with_ObjectDisposedException_and_closes_once()
    {
        var wait = _channels.WaitPendingAsync(CancellationToken.None);
        _channels.Dispose();
        _channels.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await wait);
        Assert.Equal(1, _library.CloseCalls);
        Assert.Throws<ObjectDisposedException>(() => _channels.TryGetPending(out _));
        Assert.Throws<ObjectDisposedException>(() => _channels.Notify(1));
    }

    [Fact]
    public void Calls_go_to_the_library_with_the_port_and_return_the_local_port()
    {
        Assert.Equal(107u, _channels.BindInterdomain(remoteDomid: 3, remotePort: 7));
        _channels.Notify(107);
        _channels.Unmask(107);
        _channels.Unbind(107);
        Assert.Equal([("bind", 7u), ("notify", 107u), ("unmask", 107u), ("unbind", 107u)], _library.Calls);
    }

    [Fact]
    public void Failed_bind_names_the_call_the_remote_end_and_the_errno()
    {
        _library.CallErrno = LibC.EINVAL;
        var e = Assert.Throws<XenNativeException>(() => _channels.BindInterdomain(3, 7));
        Assert.Equal("xenevtchn_bind_interdomain", e.Operation);
        Assert.Equal(LibC.EINVAL, e.Errno);
        Assert.Contains("binding to port 7 of domain 3", e.Message);
    }

    [Theory]
    [InlineData("xenevtchn_notify")]
    [InlineData("xenevtchn_unmask")]
    [InlineData("xenevtchn_unbind")]
    public void Failed_port_calls_name_the_call(string operation)
    {
        _library.CallErrno = LibC.ENOTTY;
        Action call = operation switch
        {
            "xenevtchn_notify" => () => _channels.Notify(8),
            "xenevtchn_unmask" => () => _channels.Unmask(8),
            _ => () => _channels.Unbind(8),
        };
        var e = Assert.Throws<XenNativeException>(call);
        Assert.Equal(operation, e.Operation);
        Assert.Contains("local port 8", e.Message);
    }
}
