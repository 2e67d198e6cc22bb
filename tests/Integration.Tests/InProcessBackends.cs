using System.Collections.Concurrent;
using XenBackends.Backend.Block;
using XenBackends.Native;
using XenBackends.SimulatedHost;
using XenBackends.Xenbus;

namespace XenBackends.Integration.Tests;

/// <summary>
/// The service's job in miniature, inside the test process: discover vbd devices in the simulated
/// dom0's xenstore and run a real <see cref="BlockDevice"/> for each through <see cref="BackendLifecycle"/>,
/// all devices sharing one grant mapper as a worker does. Hostile.Tests compiles this file too.
/// </summary>
internal sealed class InProcessBackends : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<DevicePath, (BlockDevice Device, BackendLifecycle Lifecycle, Task Run)> _devices = new();
    private readonly WatchRouter _watches;
    private readonly SimulatedXenHost _host;
    private readonly BlockBackendOptions _options;
    private readonly Task _discovery;

    private readonly XenStore.XenStoreClient _dom0;

    /// <summary>
    /// Serves with its own dom0 xenstore connection, as the service's worker process would.
    /// <paramref name="wrapGrants"/> may put a counting or failing layer around dom0's grant mapper.
    /// </summary>
    public static async Task<InProcessBackends> StartAsync(SimulatedXenHost host, string dom0SocketPath, BlockBackendOptions? options = null,
        Func<IGrantMapper, IGrantMapper>? wrapGrants = null) =>
        new(host, await XenStore.XenStoreClient.OpenSocketAsync(dom0SocketPath), options, wrapGrants);

    private InProcessBackends(SimulatedXenHost host, XenStore.XenStoreClient dom0, BlockBackendOptions? options, Func<IGrantMapper, IGrantMapper>? wrapGrants)
    {
        _dom0 = dom0;
        _host = host;
        _options = options ?? new BlockBackendOptions();
        IGrantMapper grants = host.CreateGrantMapper(0);
        Grants = wrapGrants is null ? grants : wrapGrants(grants);
        _watches = new WatchRouter(dom0);
        var discovery = new BackendDiscovery(_watches, 0, new[] { "vbd" });
        _discovery = discovery.RunAsync(OnDevicesAsync, _stop.Token);
    }

    /// <summary>The grant mapper every device uses (wrapped if asked); disposed with this.</summary>
    public IGrantMapper Grants { get; }

    /// <summary>The watch router of the dom0 connection (tests count the waits outstanding on it).</summary>
    public WatchRouter Watches => _watches;

    public ConcurrentQueue<string> Log { get; } = new();

    public BlockDevice Device(DevicePath path) => _devices[path].Device;

    public BackendLifecycle Lifecycle(DevicePath path) => _devices[path].Lifecycle;

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
                continue; // the toolstack has not finished writing it; the next scan retries
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
