using XenBackends.Service.Worker;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Service.Tests;

/// <summary>The worker's per-guest device set against a real (simulated) xenstored.</summary>
public sealed class GuestDevicesTests
{
    /// <summary>Counts what the worker would serve; the lifecycle machinery around it is the real one.</summary>
    private sealed class PreparedDevices
    {
        public int Count;

        public IBackendDevice Create() => new Device(this);

        private sealed class Device(PreparedDevices owner) : IBackendDevice
        {
            public Task PrepareAsync(XenbusDevice device, CancellationToken cancellationToken)
            {
                Interlocked.Increment(ref owner.Count);
                return Task.CompletedTask;
            }

            public Task ConnectAsync(XenbusDevice device, CancellationToken cancellationToken) => Task.CompletedTask;
            public Task DisconnectAsync(CancellationToken cancellationToken) => Task.CompletedTask;
            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    [Fact]
    public async Task A_detached_device_still_awaiting_its_removal_is_not_served_again_but_a_fresh_one_under_the_same_devid_is()
    {
        // What libxl leaves between our Closed and its rm (the hotplug script's remove/offline runs in
        // between): online=0, state 6, the frontend already gone. Seen in the Xen lab after xl save.
        await using var sim = await SimHost.CreateAsync();
        await using var store = await XenStoreClient.OpenSocketAsync(sim.XenStoreSocket);
        await using var watches = new WatchRouter(store);
        var path = new DevicePath(0, "vbd", 31, 51712);
        await WriteBackendAsync(sim, path, online: "0", state: "6");

        var prepared = new PreparedDevices();
        var log = new List<string>();
        var devices = new GuestDevices(watches, _ => prepared.Create(), line => { lock (log) log.Add(line); });
        using var stop = new CancellationTokenSource();
        await devices.UpdateAsync([path], stop.Token);
        Assert.Empty(devices.Snapshot());
        Assert.Equal(0, prepared.Count);

        // Half gone, as a scan can find it while libxl removes it: frontend still readable, no state.
        await sim.Dom0.RemoveAsync(path.Backend + "/state");
        await devices.UpdateAsync([path], stop.Token);
        Assert.Empty(devices.Snapshot());
        Assert.Equal(0, prepared.Count);

        // libxl removes it, then attaches the same image again: same devid, a fresh directory.
        await sim.Dom0.RemoveAsync(path.Backend);
        await WriteBackendAsync(sim, path, online: "1", state: "1");
        await devices.UpdateAsync([path], stop.Token);
        await Eventually.TrueAsync(() => Volatile.Read(ref prepared.Count) == 1, "the re-attached device is prepared");

        stop.Cancel();
        await devices.WhenAllStoppedAsync();
    }

    private static async Task WriteBackendAsync(SimHost sim, DevicePath path, string online, string state)
    {
        await sim.Dom0.WriteAsync(path.Backend + "/frontend", path.ExpectedFrontend);
        await sim.Dom0.WriteAsync(path.Backend + "/frontend-id", path.FrontendDomId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await sim.Dom0.WriteAsync(path.Backend + "/online", online);
        await sim.Dom0.WriteAsync(path.Backend + "/state", state);
    }
}
