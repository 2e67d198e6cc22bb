using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Net.Tests.Infra;

/// <summary>
/// One vif end to end on the simulated host: in-process xenstored, toolstack keys as libxl writes them,
/// BackendLifecycle driving a NetDevice, a test netfront, and a namespace the "hotplug script" moves
/// the tap into. Every wait is bounded and fails the test when it runs out.
/// </summary>
internal sealed class NetHarness : IAsyncDisposable
{
    public static readonly byte[] GuestMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x07];
    public const string GuestMacText = "02:00:00:00:00:07";
    private static int s_nextDomid = 20;

    private readonly string _dir = Directory.CreateTempSubdirectory("xbnet-").FullName;
    private readonly CancellationTokenSource _cts = new();
    private XenStoreListener? _listener;
    private Task? _run;

    private NetHarness(ushort domid) => Domid = domid;

    public ushort Domid { get; }
    public SimulatedXenHost Host { get; } = new();
    public SimulatedDomain Guest { get; private set; } = null!;
    public XenStoreServer Server { get; } = new();
    public XenStoreClient Store { get; private set; } = null!;
    public WatchRouter Watches { get; private set; } = null!;
    public XenbusDevice Device { get; private set; } = null!;
    public NetDevice Net { get; private set; } = null!;
    public BackendLifecycle Lifecycle { get; private set; } = null!;
    public NetNamespace Ns { get; } = new();
    public TestNetfront Front { get; private set; } = null!;
    public List<string> Log { get; } = [];

    public string BackendPath => Device.BackendPath;
    public string FrontendPath => Device.FrontendPath;

    /// <summary>Queue 0 is <see cref="Front"/>; more exist after <see cref="BringUpMultiQueueAsync"/>.</summary>
    public TestNetfront[] FrontQueues { get; private set; } = [];

    public static async Task<NetHarness> StartAsync(string? vifname = null, NetQueueOptions? queue = null, bool split = false, int maxQueues = 1, (ulong Bytes, ulong Microseconds)? defaultRate = null)
    {
        var h = new NetHarness((ushort)Interlocked.Increment(ref s_nextDomid));
        try
        {
            await h.InitAsync(vifname, queue ?? new NetQueueOptions(), split, maxQueues, defaultRate);
            return h;
        }
        catch
        {
            await h.DisposeAsync();
            throw;
        }
    }

    private async Task InitAsync(string? vifname, NetQueueOptions queue, bool split, int maxQueues, (ulong Bytes, ulong Microseconds)? defaultRate)
    {
        Guest = Host.CreateDomain(Domid, 2048);
        _listener = Server.Listen(Path.Combine(_dir, "xs"), 0);
        Store = await XenStoreClient.OpenSocketAsync(_listener.SocketPath);
        var path = new DevicePath(0, "vif", Domid, 0);
        string be = path.Backend, fe = path.ExpectedFrontend;
        // What libxl writes for a vif (ecosystem 2.3), hotplug-status "" included.
        foreach (var (k, v) in new Dictionary<string, string>
        {
            ["frontend"] = fe, ["frontend-id"] = Domid.ToString(), ["online"] = "1", ["state"] = "1",
            ["mac"] = GuestMacText, ["handle"] = "0", ["script"] = "/etc/xen/scripts/vif-bridge",
            ["bridge"] = "xenbr0", ["type"] = "vif", ["hotplug-status"] = "",
        })
            await Store.WriteAsync(be + "/" + k, v);
        if (vifname is not null)
            await Store.WriteAsync(be + "/vifname", vifname);
        foreach (var (k, v) in new Dictionary<string, string>
        {
            ["backend"] = be, ["backend-id"] = "0", ["state"] = "1", ["handle"] = "0", ["mac"] = GuestMacText,
        })
            await Store.WriteAsync(fe + "/" + k, v);

        Watches = new WatchRouter(Store);
        Device = await XenbusDevice.OpenAsync(Watches, path);
        Net = new NetDevice(new NetDeviceOptions
        {
            Grants = Host.CreateGrantMapper(0),
            OpenEventChannels = () => Host.OpenEventChannels(0),
            Queue = queue,
            MaxQueues = maxQueues,
            DefaultRate = defaultRate,
            Log = m => { lock (Log) Log.Add(m); },
        });
        Lifecycle = new BackendLifecycle(Device, Net, m => { lock (Log) Log.Add(m); });
        _run = Task.Run(() => Lifecycle.RunAsync(_cts.Token));
        await WaitBackendStateAsync(XenbusState.InitWait);
        Front = new TestNetfront(Guest, split);
        FrontQueues = [Front];
    }

    public async Task WaitBackendStateAsync(XenbusState state, int timeoutMs = 10_000)
    {
        long deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            if (_run is { IsFaulted: true })
                throw new InvalidOperationException("lifecycle died", _run.Exception);
            var current = await Device.ReadBackendStateAsync();
            if (current == state)
                return;
            if (Environment.TickCount64 > deadline)
            {
                string? fe = await Store.TryReadStringAsync(FrontendPath + "/state");
                string? hp = await Store.TryReadStringAsync(BackendPath + "/hotplug-status");
                string? err = await ReadErrorAsync();
                throw new TimeoutException($"backend state is {current}, expected {state} (frontend {fe}, hotplug-status {hp}, error {err}); log: {string.Join(" | ", Log)}");
            }
            await Task.Delay(10);
        }
    }

    /// <summary>
    /// What vif-bridge would do, but into the test namespace: move the tap there, bring it up with a
    /// private address and a static neighbour entry for the guest, then report hotplug-status=connected.
    /// </summary>
    public async Task HotplugAsync(int mtu = 1500)
    {
        string vif = Net.InterfaceName ?? throw new InvalidOperationException("no tap");
        Ns.Adopt(vif);
        // No IPv6 on the vif: router solicitations and DAD would otherwise be the guest's first frames.
        Ns.Exec("sysctl", "-qw", $"net/ipv6/conf/{vif}/disable_ipv6=1");
        Ns.Ip("link", "set", vif, "mtu", mtu.ToString(), "up");
        Ns.Ip("addr", "add", "10.200.1.1/24", "dev", vif);
        Ns.Ip("neigh", "replace", "10.200.1.2", "lladdr", GuestMacText, "dev", vif, "nud", "permanent");
        await Store.WriteAsync(BackendPath + "/hotplug-status", "connected");
    }

    public static readonly Dictionary<string, string> LinuxNetfrontFeatures = new()
    {
        ["request-rx-copy"] = "1", ["feature-rx-notify"] = "1", ["feature-sg"] = "1",
        ["feature-gso-tcpv4"] = "1", ["feature-gso-tcpv6"] = "1", ["feature-ipv6-csum-offload"] = "1",
    };

    /// <summary>The frontend publishes its rings and goes straight to Connected, as Linux netfront does.</summary>
    public async Task ConnectFrontendAsync(IReadOnlyDictionary<string, string>? features = null, TestCtrlRing? ctrl = null)
    {
        await Front.WriteKeysAsync(Store, FrontendPath, features ?? LinuxNetfrontFeatures);
        if (ctrl is not null)
            await ctrl.WriteKeysAsync(Store, FrontendPath);
        await Store.WriteAsync(FrontendPath + "/state", "4");
    }

    /// <summary>Hotplug, connect, and wait for the backend to be Connected.</summary>
    public async Task BringUpAsync(IReadOnlyDictionary<string, string>? features = null, int mtu = 1500, TestCtrlRing? ctrl = null)
    {
        await HotplugAsync(mtu);
        await ConnectFrontendAsync(features, ctrl);
        await WaitBackendStateAsync(XenbusState.Connected);
    }

    /// <summary>A netfront with <paramref name="queues"/> queues (keys under queue-N/), optionally with a control ring.</summary>
    public async Task BringUpMultiQueueAsync(int queues, TestCtrlRing? ctrl = null)
    {
        await HotplugAsync();
        FrontQueues = [Front, .. Enumerable.Range(1, queues - 1).Select(_ => new TestNetfront(Guest, split: false, txPages: 16, rxPages: 64))];
        await Store.WriteAsync(FrontendPath + "/multi-queue-num-queues", queues.ToString());
        for (int i = 0; i < queues; i++)
            await FrontQueues[i].WriteKeysAsync(Store, $"{FrontendPath}/queue-{i}", new Dictionary<string, string>());
        foreach (var (k, v) in LinuxNetfrontFeatures)
            await Store.WriteAsync(FrontendPath + "/" + k, v);
        if (ctrl is not null)
            await ctrl.WriteKeysAsync(Store, FrontendPath);
        await Store.WriteAsync(FrontendPath + "/state", "4");
        await WaitBackendStateAsync(XenbusState.Connected);
    }

    public NetQueueStats Stats(int queue = 0) => Net.Counters[queue].Snapshot();

    public async Task<string?> ReadErrorAsync() => await Store.TryReadStringAsync(Device.ErrorPath);

    public async ValueTask DisposeAsync()
    {
        _cts.Cancel();
        if (_run is not null)
        {
            try { await _run; } catch (OperationCanceledException) { }
        }
        if (Net is not null)
            await Net.DisposeAsync();
        if (Watches is not null)
            await Watches.DisposeAsync();
        if (Store is not null)
            await Store.DisposeAsync();
        if (_listener is not null)
            await _listener.DisposeAsync();
        await Server.DisposeAsync();
        Ns.Dispose();
        Host.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
