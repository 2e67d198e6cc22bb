using System.Collections.Concurrent;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Net.Tests.Integration;

/// <summary>
/// vif-bridge for the test: on "online" the tap the backend created goes into the test namespace
/// with a private address, then hotplug-status=connected, as xen-hotplug-common.sh's success does.
/// </summary>
internal sealed class NamespaceVifScript(NetNamespace ns) : IHotplugScripts
{
    public ConcurrentQueue<HotplugInvocation> Runs { get; } = new();

    public async Task RunAsync(HotplugInvocation invocation, XenStoreClient dom0, CancellationToken cancellationToken)
    {
        Runs.Enqueue(invocation);
        if (invocation is not { Kind: "vif", Action: "online" })
            return;
        string vif = invocation.Environment["vif"];
        ns.Adopt(vif);
        ns.Exec("sysctl", "-qw", $"net/ipv6/conf/{vif}/disable_ipv6=1");
        ns.Ip("link", "set", vif, "up");
        ns.Ip("addr", "add", "10.200.1.1/24", "dev", vif);
        await dom0.WriteAsync(invocation.BackendPath + "/hotplug-status", "connected", cancellationToken);
    }
}

/// <summary>
/// The simulated host's own toolstack and guest driver against the real <see cref="NetDevice"/>:
/// vif devices are discovered in dom0's xenstore and each is run through <see cref="BackendLifecycle"/>;
/// when the lifecycle reports the device removed, the device is disposed (the tap goes), as the
/// service's worker does.
/// </summary>
internal sealed class ToolstackFixture : IAsyncDisposable
{
    private static int s_nextDomid = 200;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<DevicePath, (NetDevice Device, Task Run)> _devices = new();
    private readonly ConcurrentQueue<string> _log = new();
    private XenStoreClient _dom0 = null!;
    private WatchRouter _watches = null!;
    private Task _discovery = Task.CompletedTask;

    private ToolstackFixture() => Domid = (ushort)Interlocked.Increment(ref s_nextDomid);

    public ushort Domid { get; }
    public SimulatedXenHost Host { get; } = new();
    public XenStoreServer XenStore { get; } = new();
    public NetNamespace Ns { get; } = new();
    public SimulatedToolstack Toolstack { get; private set; } = null!;
    public SimulatedGuest Guest { get; private set; } = null!;
    public string Log => string.Join(" | ", _log);

    public static async Task<ToolstackFixture> CreateAsync(int maxQueues)
    {
        var f = new ToolstackFixture();
        try
        {
            f.Toolstack = await SimulatedToolstack.StartAsync(f.Host, f.XenStore, new ToolstackOptions { HotplugScripts = new NamespaceVifScript(f.Ns) });
            f._dom0 = await XenStoreClient.OpenSocketAsync(f.Toolstack.Dom0SocketPath);
            f._watches = new WatchRouter(f._dom0);
            var discovery = new BackendDiscovery(f._watches, 0, ["vif"]);
            f._discovery = discovery.RunAsync(paths => f.OnDevicesAsync(paths, maxQueues), f._stop.Token);
            f.Guest = await f.Toolstack.CreateDomainAsync(new DomainSpec(f.Domid, "guest") { Pages = 8192, GrantEntries = 8192 });
            return f;
        }
        catch
        {
            await f.DisposeAsync();
            throw;
        }
    }

    public NetDevice Device(DevicePath path) => _devices[path].Device;

    /// <summary>The frontend connects first; the backend follows once it mapped the rings and hotplug said connected.</summary>
    public Task WaitBackendConnectedAsync(AttachedDevice nic) => WaitBackendStateAsync(nic, XenbusState.Connected);

    public async Task WaitBackendStateAsync(AttachedDevice nic, XenbusState state)
    {
        long deadline = Environment.TickCount64 + 20_000;
        string expected = ((int)state).ToString(System.Globalization.CultureInfo.InvariantCulture);
        while (await Toolstack.Dom0.TryReadStringAsync(nic.BackendPath + "/state") != expected)
        {
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException($"backend {nic.BackendPath} not {state}; log: {Log}");
            await Task.Delay(10);
        }
    }

    public bool IsServing(DevicePath path) => _devices.TryGetValue(path, out var d) && !d.Run.IsCompleted;

    private async Task OnDevicesAsync(IReadOnlySet<DevicePath> present, int maxQueues)
    {
        foreach (var path in present)
        {
            if (_devices.ContainsKey(path))
                continue;
            XenbusDevice xenbus;
            try
            {
                xenbus = await XenbusDevice.OpenAsync(_watches, path, _stop.Token);
            }
            catch (FrontendConfigurationException)
            {
                continue; // not fully written yet; the next scan retries
            }
            var device = new NetDevice(new NetDeviceOptions
            {
                Grants = Host.CreateGrantMapper(0),
                OpenEventChannels = () => Host.OpenEventChannels(0),
                MaxQueues = maxQueues,
                Log = _log.Enqueue,
            });
            var lifecycle = new BackendLifecycle(xenbus, device, _log.Enqueue);
            _devices[path] = (device, Task.Run(async () =>
            {
                try
                {
                    await lifecycle.RunAsync(_stop.Token);
                }
                finally
                {
                    await device.DisposeAsync();
                }
            }));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        foreach (var (_, run) in _devices.Values)
        {
            try { await run; } catch (OperationCanceledException) { }
        }
        try { await _discovery; } catch (OperationCanceledException) { }
        if (_watches is not null)
            await _watches.DisposeAsync();
        if (_dom0 is not null)
            await _dom0.DisposeAsync();
        if (Toolstack is not null)
            await Toolstack.DisposeAsync();
        await XenStore.DisposeAsync();
        Ns.Dispose();
        Host.Dispose();
    }
}
