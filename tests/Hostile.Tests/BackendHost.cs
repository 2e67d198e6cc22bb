using System.Collections.Concurrent;
using XenBackends.Backend.Block;
using XenBackends.Native;
using XenBackends.SimulatedHost;
using XenBackends.Xenbus;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// One backend process in miniature (the Integration.Tests pattern): discovers vbd devices in the
/// simulated dom0's xenstore and runs a real <see cref="BlockDevice"/> for each through
/// <see cref="BackendLifecycle"/>, all devices sharing one grant mapper as the service does.
/// </summary>
internal sealed class BackendHost : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<DevicePath, (BlockDevice Device, BackendLifecycle Lifecycle, Task Run)> _devices = new();
    private readonly WatchRouter _watches;
    private readonly SimulatedXenHost _host;
    private readonly BlockBackendOptions _options;
    private readonly XenStore.XenStoreClient _dom0;
    private readonly Task _discovery;

    private BackendHost(SimulatedXenHost host, XenStore.XenStoreClient dom0, BlockBackendOptions? options)
    {
        _host = host;
        _dom0 = dom0;
        _options = options ?? new BlockBackendOptions();
        Grants = new CountingGrantMapper(host.CreateGrantMapper(0));
        _watches = new WatchRouter(dom0);
        _discovery = new BackendDiscovery(_watches, 0, ["vbd"]).RunAsync(OnDevicesAsync, _stop.Token);
    }

    public static async Task<BackendHost> StartAsync(SimulatedXenHost host, string dom0Socket, BlockBackendOptions? options) =>
        new(host, await XenStore.XenStoreClient.OpenSocketAsync(dom0Socket), options);

    public CountingGrantMapper Grants { get; }

    public ConcurrentQueue<string> Log { get; } = new();

    public BlockDevice Device(DevicePath path) => _devices[path].Device;

    public BackendLifecycle Lifecycle(DevicePath path) => _devices[path].Lifecycle;

    /// <summary>The most waits outstanding on one of this backend's watch subscriptions (one per waiting loop).</summary>
    public int MostWaitsOnOneSubscription => _watches.MostWaitsOnOneSubscription;

    /// <summary>The device's lifecycle task is still running (it neither crashed nor was removed).</summary>
    public bool IsServing(DevicePath path) => _devices.TryGetValue(path, out var d) && !d.Run.IsCompleted;

    private async Task OnDevicesAsync(IReadOnlySet<DevicePath> present)
    {
        foreach (var path in present)
        {
            if (_devices.ContainsKey(path)) continue;
            XenbusDevice xenbus;
            try
            {
                xenbus = await XenbusDevice.OpenAsync(_watches, path, _stop.Token);
            }
            catch (FrontendConfigurationException)
            {
                continue; // not fully written yet; the next scan retries
            }
            var device = new BlockDevice(Grants, () => _host.OpenEventChannels(0), _options, Log.Enqueue);
            var lifecycle = new BackendLifecycle(xenbus, device, Log.Enqueue);
            _devices[path] = (device, lifecycle, Task.Run(() => lifecycle.RunAsync(_stop.Token)));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        foreach (var (device, _, run) in _devices.Values)
        {
            try { await run; } catch (OperationCanceledException) { }
            await device.DisposeAsync();
        }
        try { await _discovery; } catch (OperationCanceledException) { }
        await _watches.DisposeAsync();
        await _dom0.DisposeAsync();
        Grants.Dispose();
    }
}
