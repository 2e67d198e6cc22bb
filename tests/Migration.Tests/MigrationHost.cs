using System.Collections.Concurrent;
using XenBackends.Backend.Block;
using XenBackends.Backend.Net;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Native;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Migration.Tests;

/// <summary>
/// One simulated host (xenstored, libxl-like toolstack) and an in-process backend service that
/// runs a real <see cref="BlockDevice"/> per vbd and a real <see cref="NetDevice"/> per vif (its tap
/// moved into a namespace the host makes, by a vif hotplug script). Each vbd's options come from a
/// chooser, so the source and the destination of a move can differ (a hung image, no indirect
/// descriptors). A vif's device is disposed when its lifecycle ends, as the service's worker does.
/// </summary>
internal sealed class MigrationHost : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("xb-mig-").FullName;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<DevicePath, Served> _devices = new();
    private readonly ConcurrentDictionary<DevicePath, ServedNic> _nics = new();
    private Func<DevicePath, BlockBackendOptions> _options = _ => new BlockBackendOptions();
    private XenStoreClient _dom0 = null!;
    private WatchRouter _watches = null!;
    private IGrantMapper _grants = null!;
    private Task _discovery = Task.CompletedTask;

    internal sealed record Served(BlockDevice Device, BackendLifecycle Lifecycle, Task Run);

    internal sealed record ServedNic(NetDevice Device, BackendLifecycle Lifecycle, Task Run);

    public SimulatedXenHost Host { get; } = new();
    public XenStoreServer XenStore { get; } = new();
    public SimulatedToolstack Toolstack { get; private set; } = null!;
    public ConcurrentQueue<string> Log { get; } = new();

    /// <summary>Where vif taps go (null unless the host serves vifs).</summary>
    public NetNamespace? Ns { get; private set; }

    public static async Task<MigrationHost> StartAsync(Func<DevicePath, BlockBackendOptions>? options = null, ToolstackOptions? toolstack = null, bool nics = false)
    {
        var h = new MigrationHost();
        if (options is not null) h._options = options;
        if (nics)
        {
            h.Ns = new NetNamespace();
            var t = toolstack ?? new ToolstackOptions();
            toolstack = new ToolstackOptions
            {
                InitTimeout = t.InitTimeout,
                HotplugTimeout = t.HotplugTimeout,
                DestroyTimeout = t.DestroyTimeout,
                SocketDirectory = t.SocketDirectory,
                HotplugScripts = new NamespaceVifScript(h.Ns),
            };
        }
        h.Toolstack = await SimulatedToolstack.StartAsync(h.Host, h.XenStore, toolstack);
        h._dom0 = await XenStoreClient.OpenSocketAsync(h.Toolstack.Dom0SocketPath);
        h._grants = h.Host.CreateGrantMapper(0);
        h._watches = new WatchRouter(h._dom0);
        h._discovery = new BackendDiscovery(h._watches, 0, nics ? ["vbd", "vif"] : ["vbd"]).RunAsync(h.OnDevicesAsync, h._stop.Token);
        return h;
    }

    public Served Device(DevicePath path) => _devices[path];

    public ServedNic Nic(DevicePath path) => _nics[path];

    public bool IsServing(DevicePath path) =>
        (_devices.TryGetValue(path, out var d) && !d.Run.IsCompleted) || (_nics.TryGetValue(path, out var n) && !n.Run.IsCompleted);

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
            if (_devices.ContainsKey(path) || _nics.ContainsKey(path)) continue;
            XenbusDevice xenbus;
            try
            {
                xenbus = await XenbusDevice.OpenAsync(_watches, path, _stop.Token);
            }
            catch (FrontendConfigurationException)
            {
                continue; // not fully written yet; the next scan retries
            }
            if (path.Kind == "vif")
            {
                var nic = new NetDevice(new NetDeviceOptions
                {
                    Grants = Host.CreateGrantMapper(0),
                    OpenEventChannels = () => Host.OpenEventChannels(0),
                    MaxQueues = 2,
                    Log = Log.Enqueue,
                });
                var nicLifecycle = new BackendLifecycle(xenbus, nic, Log.Enqueue);
                _nics[path] = new ServedNic(nic, nicLifecycle, Task.Run(async () =>
                {
                    try
                    {
                        await nicLifecycle.RunAsync(_stop.Token);
                    }
                    finally
                    {
                        await nic.DisposeAsync(); // the tap goes with the device
                    }
                }));
                continue;
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
        foreach (var (_, _, run) in _nics.Values)
        {
            try { await run; } catch (OperationCanceledException) { }
        }
        try { await _discovery; } catch (OperationCanceledException) { }
        await _watches.DisposeAsync();
        await _dom0.DisposeAsync();
        _grants.Dispose();
        await XenStore.DisposeAsync();
        Ns?.Dispose();
        Host.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>
/// vif-bridge for the test: on "online" the tap the backend made goes into the host's namespace and
/// comes up (no address: the tests move raw frames), then hotplug-status=connected as the stock
/// script's success does. vbds get what the default scripts do.
/// </summary>
internal sealed class NamespaceVifScript(NetNamespace ns) : IHotplugScripts
{
    private readonly DefaultHotplugScripts _default = new();

    public async Task RunAsync(HotplugInvocation invocation, XenStoreClient dom0, CancellationToken cancellationToken)
    {
        if (invocation is not { Kind: "vif", Action: "online" })
        {
            await _default.RunAsync(invocation, dom0, cancellationToken);
            return;
        }
        string vif = invocation.Environment["vif"];
        ns.Adopt(vif);
        ns.Exec("sysctl", "-qw", $"net/ipv6/conf/{vif}/disable_ipv6=1");
        ns.Ip("link", "set", vif, "up");
        await dom0.WriteAsync(invocation.BackendPath + "/hotplug-status", "connected", cancellationToken);
    }
}
