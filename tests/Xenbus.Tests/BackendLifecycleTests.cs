using XenBackends.XenStore;

namespace XenBackends.Xenbus.Tests;

public class BackendLifecycleTests
{
    private static async Task<(BackendLifecycle, Task, CancellationTokenSource)> StartAsync(XenstoreFixture xs, RecordingDevice device)
    {
        var xdev = await XenbusDevice.OpenAsync(xs.Watches, XenstoreFixture.Device);
        var lifecycle = new BackendLifecycle(xdev, device);
        var cts = new CancellationTokenSource();
        var run = Task.Run(() => lifecycle.RunAsync(cts.Token));
        return (lifecycle, run, cts);
    }

    /// <summary>The frontend's half of a first handshake: publish a ring, go Initialised, see Connected.</summary>
    private static async Task ConnectFrontendAsync(XenstoreFixture xs)
    {
        await xs.WaitBackendStateAsync(XenbusState.InitWait);
        await xs.Guest.WriteAsync(xs.Frontend + "/ring-ref", "8");
        await xs.SetFrontendStateAsync(XenbusState.Initialised);
        await xs.WaitBackendStateAsync(XenbusState.Connected);
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for " + what);
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task Full_handshake_close_and_reconnect_like_a_rebooting_guest()
    {
        await using var xs = await XenstoreFixture.CreateAsync();
        var device = new RecordingDevice();
        var (_, run, cts) = await StartAsync(xs, device);

        await xs.WaitBackendStateAsync(XenbusState.InitWait);
        Assert.Equal("1", await xs.Dom0.ReadStringAsync(xs.Backend + "/feature-test"));

        await xs.Guest.WriteAsync(xs.Frontend + "/ring-ref", "8");
        await xs.SetFrontendStateAsync(XenbusState.Initialised);
        await xs.WaitBackendStateAsync(XenbusState.Connected);
        Assert.True(device.Connected);
        await xs.SetFrontendStateAsync(XenbusState.Connected);

        await xs.SetFrontendStateAsync(XenbusState.Closing);
        await xs.WaitBackendStateAsync(XenbusState.Closing);
        Assert.True(device.Connected, "rings must stay up until the frontend is Closed");
        await xs.SetFrontendStateAsync(XenbusState.Closed);
        await xs.WaitBackendStateAsync(XenbusState.Closed);
        Assert.False(device.Connected);

        // The guest reboots: its frontend starts over.
        await xs.SetFrontendStateAsync(XenbusState.Initialising);
        await xs.WaitBackendStateAsync(XenbusState.InitWait);
        await xs.SetFrontendStateAsync(XenbusState.Initialised);
        await xs.WaitBackendStateAsync(XenbusState.Connected);
        Assert.Equal(2, device.Connects);
        Assert.Equal(1, device.Disconnects);

        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.False(device.Connected);
        Assert.Equal(XenbusState.Connected, await xs.BackendStateAsync()); // left for a restarted worker
    }

    [Fact]
    public async Task A_bad_guest_value_is_reported_in_the_error_node_and_the_backend_closes()
    {
        await using var xs = await XenstoreFixture.CreateAsync();
        var device = new RecordingDevice();
        var (lifecycle, run, cts) = await StartAsync(xs, device);
        await xs.WaitBackendStateAsync(XenbusState.InitWait);

        await xs.Guest.WriteAsync(xs.Frontend + "/ring-ref", "banana");
        await xs.SetFrontendStateAsync(XenbusState.Initialised);
        await xs.WaitBackendStateAsync(XenbusState.Closing);

        string error = await xs.Dom0.ReadStringAsync("/local/domain/0/error/backend/vbd/5/51712/error");
        Assert.Contains("ring-ref", error);
        Assert.Contains("banana", error);
        Assert.Equal(error, lifecycle.LastError);
        Assert.False(device.Connected);
        Assert.Equal(0, device.Connects);

        // The frontend gives up and closes; a later clean attempt connects and clears the error.
        await xs.SetFrontendStateAsync(XenbusState.Closed);
        await xs.WaitBackendStateAsync(XenbusState.Closed);
        await xs.Guest.WriteAsync(xs.Frontend + "/ring-ref", "9");
        await xs.SetFrontendStateAsync(XenbusState.Initialising);
        await xs.WaitBackendStateAsync(XenbusState.InitWait);
        await xs.SetFrontendStateAsync(XenbusState.Initialised);
        await xs.WaitBackendStateAsync(XenbusState.Connected);
        Assert.Null(await xs.Dom0.TryReadStringAsync("/local/domain/0/error/backend/vbd/5/51712/error"));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task Detach_like_xl_block_detach_closes_then_returns()
    {
        await using var xs = await XenstoreFixture.CreateAsync();
        var device = new RecordingDevice();
        var (_, run, _) = await StartAsync(xs, device);
        await ConnectFrontendAsync(xs);
        await xs.SetFrontendStateAsync(XenbusState.Connected);

        // libxl: online=0 and backend state Closing; the frontend follows to Closed.
        await xs.Dom0.WriteAsync(xs.Backend + "/online", "0");
        await xs.Dom0.WriteAsync(xs.Backend + "/state", "5");
        await xs.SetFrontendStateAsync(XenbusState.Closing);
        await xs.SetFrontendStateAsync(XenbusState.Closed);
        await run.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.False(device.Connected);
        Assert.Equal(XenbusState.Closed, await xs.BackendStateAsync());
    }

    [Fact]
    public async Task A_restarted_worker_resumes_a_connected_device_without_a_new_handshake()
    {
        await using var xs = await XenstoreFixture.CreateAsync();
        await xs.Dom0.WriteAsync(xs.Backend + "/state", "4");
        await xs.Guest.WriteAsync(xs.Frontend + "/ring-ref", "8");
        await xs.SetFrontendStateAsync(XenbusState.Connected);
        var device = new RecordingDevice();
        var (_, run, cts) = await StartAsync(xs, device);

        await Until(() => device.Connected, "the resumed connect");
        Assert.DoesNotContain(XenbusState.InitWait, await Seen());
        Assert.Equal(new[] { "prepare", "connect" }, device.Calls);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);

        async Task<XenbusState[]> Seen() => new[] { (await xs.BackendStateAsync())!.Value };
    }

    [Fact]
    public async Task Removal_of_the_backend_directory_ends_the_device()
    {
        await using var xs = await XenstoreFixture.CreateAsync();
        var device = new RecordingDevice();
        var (_, run, _) = await StartAsync(xs, device);
        await ConnectFrontendAsync(xs);

        await xs.Dom0.RemoveAsync(xs.Backend);
        await run.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.False(device.Connected);
        Assert.Null(await xs.BackendStateAsync()); // not recreated by a late state write
    }

    [Fact]
    public async Task A_device_already_closed_for_removal_is_not_served_again()
    {
        // What the worker meets after a detach or a guest reboot: its first lifecycle closed the
        // device and returned, but libxl deletes the directory only after the hotplug script's
        // "remove", and any write in it makes the worker look again (seen on real Xen in the lab).
        await using var xs = await XenstoreFixture.CreateAsync();
        await xs.Dom0.WriteAsync(xs.Backend + "/online", "0");
        await xs.Dom0.WriteAsync(xs.Backend + "/state", "6");
        await xs.SetFrontendStateAsync(XenbusState.Closed);
        var device = new RecordingDevice();
        var (_, run, _) = await StartAsync(xs, device);

        await run.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Empty(device.Calls); // not prepared: no tap re-created, no image opened
        Assert.Null(await xs.Dom0.TryReadStringAsync(xs.Backend + "/feature-test"));
        Assert.Equal(XenbusState.Closed, await xs.BackendStateAsync()); // not switched back to InitWait
    }

    [Fact]
    public async Task A_device_caught_mid_detach_by_a_restarted_worker_is_still_closed()
    {
        // Not the case above: online=0 but the backend only Closing (the worker died before the
        // frontend closed). The new worker must finish the close, or libxl waits for state 6 in vain.
        await using var xs = await XenstoreFixture.CreateAsync();
        await xs.Dom0.WriteAsync(xs.Backend + "/online", "0");
        await xs.Dom0.WriteAsync(xs.Backend + "/state", "5");
        await xs.SetFrontendStateAsync(XenbusState.Closed);
        var device = new RecordingDevice();
        var (_, run, _) = await StartAsync(xs, device);

        await run.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(XenbusState.Closed, await xs.BackendStateAsync());
    }

    [Fact]
    public async Task A_fatal_error_for_a_device_the_toolstack_removed_leaves_no_error_node()
    {
        await using var xs = await XenstoreFixture.CreateAsync();
        var xdev = await XenbusDevice.OpenAsync(xs.Watches, XenstoreFixture.Device);
        await xs.Dom0.RemoveAsync(xs.Backend);

        Assert.False(await xdev.ReportFatalAsync("params: missing"));
        Assert.Null(await xs.Dom0.TryReadStringAsync(xdev.ErrorPath));
        Assert.Null(await xs.BackendStateAsync());
    }

    [Fact]
    public async Task Waits_for_the_device_condition_before_connecting()
    {
        await using var xs = await XenstoreFixture.CreateAsync();
        var device = new RecordingDevice();
        device.Ready = async () => await xs.Dom0.TryReadStringAsync(xs.Backend + "/hotplug-status") == "connected";
        var (_, run, cts) = await StartAsync(xs, device);
        await xs.WaitBackendStateAsync(XenbusState.InitWait);
        await xs.Guest.WriteAsync(xs.Frontend + "/ring-ref", "8");
        await xs.SetFrontendStateAsync(XenbusState.Initialised);
        await Task.Delay(200);
        Assert.Equal(XenbusState.InitWait, await xs.BackendStateAsync());

        await xs.Dom0.WriteAsync(xs.Backend + "/hotplug-status", "connected");
        await xs.WaitBackendStateAsync(XenbusState.Connected);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task A_guest_flapping_its_state_never_gets_a_double_connect_and_settles()
    {
        // XSA-350: quick connect/disconnect toggling must not race the backend's own transitions.
        await using var xs = await XenstoreFixture.CreateAsync();
        var device = new RecordingDevice();
        var (_, run, cts) = await StartAsync(xs, device);
        await xs.WaitBackendStateAsync(XenbusState.InitWait);
        await xs.Guest.WriteAsync(xs.Frontend + "/ring-ref", "8");
        var rng = new Random(350);
        var states = new[] { XenbusState.Initialising, XenbusState.Initialised, XenbusState.Connected, XenbusState.Closing, XenbusState.Closed };
        for (int i = 0; i < 300; i++)
            await xs.SetFrontendStateAsync(states[rng.Next(states.Length)]);

        // Whatever happened, a well-behaved finish brings it back to a clean connection.
        await xs.SetFrontendStateAsync(XenbusState.Closed);
        await xs.WaitBackendStateAsync(XenbusState.Closed);
        await xs.SetFrontendStateAsync(XenbusState.Initialising);
        await xs.WaitBackendStateAsync(XenbusState.InitWait);
        await xs.SetFrontendStateAsync(XenbusState.Initialised);
        await xs.WaitBackendStateAsync(XenbusState.Connected);
        Assert.True(device.Connected);
        Assert.Equal(device.Connects - 1, device.Disconnects);
        Assert.False(run.IsFaulted, run.Exception?.ToString());
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    /// <summary>
    /// XSA-349's lesson at the level of waits: the lifecycle raced a wait on the frontend's state
    /// against one on the backend directory, and the wait that lost stayed queued on its channel.
    /// A guest rewriting its own state node left one wait on the quiet backend watch per rewrite,
    /// about 330 bytes each, for as long as the device lived.
    /// </summary>
    [Fact]
    public async Task A_guest_rewriting_its_state_leaves_no_waits_behind()
    {
        await using var xs = await XenstoreFixture.CreateAsync();
        var device = new RecordingDevice();
        var (_, run, cts) = await StartAsync(xs, device);
        await ConnectFrontendAsync(xs);
        await xs.SetFrontendStateAsync(XenbusState.Connected);

        for (int i = 0; i < 2000; i++)
            await xs.SetFrontendStateAsync(XenbusState.Connected);
        await Task.Delay(300); // the lifecycle's last passes over the storm

        Assert.InRange(xs.Watches.MostWaitsOnOneSubscription, 0, 1);
        Assert.Equal(XenbusState.Connected, await xs.BackendStateAsync());
        Assert.False(run.IsCompleted, run.Exception?.ToString());
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }
}
