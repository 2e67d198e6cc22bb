using System.Collections.Concurrent;
using XenBackends.Backend.Block;
using XenBackends.Native;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Migration.Tests;

/// <summary>
/// One simulated host (xenstored, libxl-like toolstack) and an in-process block backend service that
/// runs a real <see cref="BlockDevice"/> per vbd. Each device's options come from a chooser, so the
/// source and the destination of a move can differ (a hung image, no indirect descriptors).
/// </summary>
internal sealed class MigrationHost : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("xb-mig-").FullName;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<DevicePath, Served> _devices = new();
    private Func<DevicePath, BlockBackendOptions> _options = _ => new BlockBackendOptions();
    private XenStoreClient _dom0 = null!;
    private WatchRouter _watches = null!;
    private IGrantMapper _grants = null!;
    private Task _discovery = Task.CompletedTask;

    internal sealed record Served(BlockDevice Device, BackendLifecycle Lifecycle, Task Run);

    public SimulatedXenHost Host { get; } = new();
    public XenStoreServer XenStore { get; } = new();
    public SimulatedToolstack Toolstack { get; private set; } = null!;
    public ConcurrentQueue<string> Log { get; } = new();

    public static async Task<MigrationHost> StartAsync(Func<DevicePath, BlockBackendOptions>? options = null, ToolstackOptions? toolstack = null)
    {
        var h = new MigrationHost();
        if (options is not null) h._options = options;
        h.Toolstack = await SimulatedToolstack.StartAsync(h.Host, h.XenStore, toolstack);
        h._dom0 = await XenStoreClient.OpenSocketAsync(h.Toolstack.Dom0SocketPath);
        h._grants = h.Host.CreateGrantMapper(0);
        h._watches = new WatchRouter(h._dom0);
        h._discovery = new BackendDiscovery(h._watches, 0, ["vbd"]).RunAsync(h.OnDevicesAsync, h._stop.Token);
        return h;
    }

    public Served Device(DevicePath path) => _devices[path];

    public bool IsServing(DevicePath path) => _devices.TryGetValue(path, out var d) && !d.Run.IsCompleted;

    public string CreateImage(long bytes, string name = "disk.img")
    {
        string path = Path.Combine(_dir, name);
        using var f = File.Create(path);
        f.SetLength(bytes);
        return path;
    }

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
            var device = new BlockDevice(_grants, () => Host.OpenEventChannels(0), _options(path), Log.Enqueue);
            var lifecycle = new BackendLifecycle(xenbus, device, Log.Enqueue);
            _devices[path] = new Served(device, lifecycle, Task.Run(() => lifecycle.RunAsync(_stop.Token)));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Toolstack.DisposeAsync();
        _stop.Cancel();
        foreach (var (device, _, run) in _devices.Values)
        {
            try { await run; } catch (OperationCanceledException) { }
            await device.DisposeAsync();
        }
        try { await _discovery; } catch (OperationCanceledException) { }
        await _watches.DisposeAsync();
        await _dom0.DisposeAsync();
        _grants.Dispose();
        await XenStore.DisposeAsync();
        Host.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
