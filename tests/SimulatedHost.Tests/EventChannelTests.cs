using XenBackends.Native;

namespace XenBackends.SimulatedHost.Tests;

public sealed class EventChannelTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly SimulatedXenHost _host = new();
    private readonly SimulatedDomain _guest;
    private readonly SimulatedEventChannels _backend;

    public EventChannelTests()
    {
        _guest = _host.CreateDomain(4, pageCount: 1);
        _backend = _host.OpenEventChannels();
    }

    public void Dispose()
    {
        _backend.Dispose();
        _host.Dispose();
    }

    private (uint GuestPort, uint BackendPort) Connect()
    {
        uint guestPort = _guest.EventChannels.BindUnboundPort(0);
        return (guestPort, _backend.BindInterdomain(4, guestPort));
    }

    [Fact]
    public void Notify_makes_the_other_end_pending_once_and_masked_until_unmask()
    {
        var (guestPort, backendPort) = Connect();
        Assert.False(_backend.TryGetPending(out _));
        _guest.EventChannels.Notify(guestPort);
        _guest.EventChannels.Notify(guestPort);
        Assert.True(_backend.TryGetPending(out uint port));
        Assert.Equal(backendPort, port);
        Assert.False(_backend.TryGetPending(out _)); // two kicks, one pending

        _guest.EventChannels.Notify(guestPort); // while masked: remembered, not delivered
        Assert.False(_backend.TryGetPending(out _));
        _backend.Unmask(backendPort);
        Assert.True(_backend.TryGetPending(out port));
        Assert.Equal(backendPort, port);
        _backend.Unmask(backendPort);
        Assert.False(_backend.TryGetPending(out _));
    }

    [Fact]
    public async Task WaitPendingAsync_wakes_on_notify_in_both_directions()
    {
        var (guestPort, backendPort) = Connect();
        var wait = _backend.WaitPendingAsync(CancellationToken.None).AsTask();
        Assert.False(wait.IsCompleted);
        _guest.EventChannels.Notify(guestPort);
        Assert.Equal(backendPort, await wait.WaitAsync(Bound));

        _backend.Notify(backendPort);
        Assert.Equal(guestPort, await _guest.EventChannels.WaitPendingAsync(CancellationToken.None).AsTask().WaitAsync(Bound));
    }

    [Fact]
    public async Task Masked_port_with_queued_kicks_does_not_wake_a_waiter_and_the_wait_can_be_cancelled()
    {
        var (guestPort, backendPort) = Connect();
        _guest.EventChannels.Notify(guestPort);
        Assert.True(_backend.TryGetPending(out _));
        _guest.EventChannels.Notify(guestPort);
        using var cts = new CancellationTokenSource();
        var wait = _backend.WaitPendingAsync(cts.Token).AsTask();
        await Task.Yield();
        Assert.False(wait.IsCompleted);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Bound));
        _backend.Unmask(backendPort);
        Assert.Equal(backendPort, await _backend.WaitPendingAsync(CancellationToken.None).AsTask().WaitAsync(Bound));
    }

    [Fact]
    public void Kicks_before_the_backend_binds_are_dropped_as_on_an_unbound_xen_port()
    {
        uint guestPort = _guest.EventChannels.BindUnboundPort(0);
        _guest.EventChannels.Notify(guestPort);
        _backend.BindInterdomain(4, guestPort);
        Assert.False(_backend.TryGetPending(out _));
    }

    [Fact]
    public void Bind_errors_are_xens()
    {
        uint forDom9 = _guest.EventChannels.BindUnboundPort(9);
        Assert.Equal(3, Assert.Throws<XenNativeException>(() => _backend.BindInterdomain(99, 1)).Errno);          // ESRCH
        Assert.Equal(22, Assert.Throws<XenNativeException>(() => _backend.BindInterdomain(4, 1234)).Errno);       // EINVAL: no such port
        Assert.Equal(22, Assert.Throws<XenNativeException>(() => _backend.BindInterdomain(4, forDom9)).Errno);    // EINVAL: reserved for d9
        var (guestPort, _) = Connect();
        Assert.Equal(22, Assert.Throws<XenNativeException>(() => _backend.BindInterdomain(4, guestPort)).Errno);  // EINVAL: already bound
    }

    [Fact]
    public void Ports_this_handle_did_not_bind_are_refused()
    {
        Assert.Equal(107, Assert.Throws<XenNativeException>(() => _backend.Notify(42)).Errno);
        Assert.Equal(107, Assert.Throws<XenNativeException>(() => _backend.Unmask(42)).Errno);
        Assert.Equal(107, Assert.Throws<XenNativeException>(() => _backend.Unbind(42)).Errno);
    }

    [Fact]
    public void Unbinding_the_backend_end_lets_a_new_backend_bind_the_guest_port_again()
    {
        var (guestPort, backendPort) = Connect();
        _backend.Unbind(backendPort);
        Assert.False(_host.Switch.IsInterdomain(4, guestPort));
        using var second = _host.OpenEventChannels();
        uint again = second.BindInterdomain(4, guestPort);
        _guest.EventChannels.Notify(guestPort);
        Assert.True(second.TryGetPending(out uint port));
        Assert.Equal(again, port);
    }
}
