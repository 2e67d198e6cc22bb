using System.Collections.Concurrent;
using System.Globalization;
using XenBackends.Backend.Net;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Hostile;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// vif-bridge for these tests: the tap goes into the test-made namespace and comes up (no address,
/// no IPv6: the only frames on it are the ones a test sends), then hotplug-status=connected.
/// </summary>
internal sealed class NamespaceVifHotplug(NetNamespace ns, Func<string, string?>? bridgeFor = null) : IHotplugScripts
{
    public async Task RunAsync(HotplugInvocation invocation, XenStoreClient dom0, CancellationToken cancellationToken)
    {
        if (invocation is not { Kind: "vif", Action: "online" })
            return;
        string vif = invocation.Environment["vif"];
        Plumb(ns, vif, bridgeFor?.Invoke(vif));
        await dom0.WriteAsync(invocation.BackendPath + "/hotplug-status", "connected", cancellationToken);
    }

    /// <summary>
    /// What "online" does to the tap (into the namespace unless already there, onto
    /// <paramref name="bridge"/> when given, creating it as vif-bridge's setup would, then up); also
    /// what a re-run of the script does for a re-created tap or a re-created bridge.
    /// </summary>
    public static void Plumb(NetNamespace ns, string vif, string? bridge = null)
    {
        if (!InNamespace(ns, vif))
            ns.Adopt(vif);
        ns.Exec("sysctl", "-qw", $"net/ipv6/conf/{vif}/disable_ipv6=1");
        if (bridge is not null)
        {
            if (!InNamespace(ns, bridge))
            {
                ns.Ip("link", "add", bridge, "type", "bridge");
                ns.Exec("sysctl", "-qw", $"net/ipv6/conf/{bridge}/disable_ipv6=1");
            }
            ns.Ip("link", "set", bridge, "up");
            ns.Ip("link", "set", vif, "master", bridge);
        }
        ns.Ip("link", "set", vif, "up");
    }

    private static bool InNamespace(NetNamespace ns, string name)
    {
        try
        {
            ns.Ip("link", "show", name);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}

/// <summary>
/// One net backend host serving two guests on the simulated host: the attacker (domid 7, a
/// <see cref="RawNetfront"/>) and a bystander (domid 8, the Linux-like netfront). Both vifs are
/// real taps in one test-made namespace. Every NetDevice shares one grant mapper, as in the service,
/// and runs through <see cref="BackendLifecycle"/>; the lifecycle tasks are watched so "the backend
/// stays up" is an assertion, not a hope.
/// </summary>
internal sealed class NetHostileFixture : IAsyncDisposable
{
    public const ushort AttackerDomid = 7;
    public const ushort BystanderDomid = 8;
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
    public static readonly byte[] TapMac = [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<DevicePath, (NetDevice Device, Task Run)> _devices = new();
    private readonly List<RawNetfront> _raws = [];
    private readonly NetQueueOptions _queue;
    private readonly TimeSpan _tapRetry;
    private readonly bool _replumb;
    private readonly int _maxQueues;
    private readonly string? _attackerBridge;
    private XenStoreClient _dom0 = null!;
    // The test's own dom0 connection for polling, apart from the backends' and the toolstack's.
    private XenStoreClient _probe = null!;
    private WatchRouter _watches = null!;
    private Task _discovery = Task.CompletedTask;
    private PacketSocket? _bystanderWire;

    private NetHostileFixture(NetQueueOptions? queue, TimeSpan? tapRetry, bool replumb, int maxQueues, string? attackerBridge)
    {
        _attackerBridge = attackerBridge;
        _maxQueues = maxQueues;
        // The attacks run against the service's default RX coalescing (limits.netRxCoalesceMicroseconds,
        // 20 us), the path a deployed backend takes; Backend.Net.Tests cover the uncoalesced one.
        queue ??= new NetQueueOptions();
        _queue = queue.RxCoalesceTime == TimeSpan.Zero ? queue with { RxCoalesceTime = TimeSpan.FromMicroseconds(20) } : queue;
        _tapRetry = tapRetry ?? TimeSpan.FromSeconds(1);
        _replumb = replumb;
    }

    /// <summary>Re-plumbings of re-created taps done for the backend (the "vif-bridge re-run").</summary>
    public int Replumbs;

    public SimulatedXenHost Host { get; } = new();
    public XenStoreServer XenStore { get; } = new();
    public NetNamespace Ns { get; } = new();
    public SimulatedToolstack Toolstack { get; private set; } = null!;
    public CountingGrantMapper Grants { get; private set; } = null!;
    public ConcurrentQueue<string> Log { get; } = new();
    public SimulatedGuest Attacker { get; private set; } = null!;
    public AttachedDevice AttackerNic { get; private set; } = null!;
    public SimulatedGuest BystanderGuest { get; private set; } = null!;
    public AttachedDevice BystanderNic { get; private set; } = null!;
    public SimulatedNetfront Bystander { get; private set; } = null!;
    public byte[] AttackerMac { get; } = [0x00, 0x16, 0x3E, 0x00, 0x07, 0x01];
    public byte[] BystanderMac { get; } = [0x00, 0x16, 0x3E, 0x00, 0x08, 0x01];

    /// <summary>Tap names carry our pid: another checkout's test run on this machine must not collide.</summary>
    public string AttackerVif { get; } = $"xha{Environment.ProcessId % 1_000_000}";
    public string BystanderVif { get; } = $"xhb{Environment.ProcessId % 1_000_000}";

    /// <param name="tapRetry">NetDeviceOptions.TapRetryInterval.</param>
    /// <param name="replumb">Give the devices a TapRecreated hook that redoes the hotplug plumbing (into the namespace, up).</param>
    /// <param name="maxQueues">multi-queue-max-queues every vif offers.</param>
    /// <param name="attackerBridge">Put the attacker's vif on a bridge of that name in the namespace (the hotplug creates it).</param>
    public static async Task<NetHostileFixture> CreateAsync(NetQueueOptions? queue = null, TimeSpan? tapRetry = null, bool replumb = false, int maxQueues = 1,
        string? attackerBridge = null)
    {
        var f = new NetHostileFixture(queue, tapRetry, replumb, maxQueues, attackerBridge);
        try
        {
            f.Toolstack = await SimulatedToolstack.StartAsync(f.Host, f.XenStore, new ToolstackOptions { HotplugScripts = new NamespaceVifHotplug(f.Ns, f.BridgeFor) });
            f.Grants = new CountingGrantMapper(f.Host.CreateGrantMapper(0));
            f._dom0 = await XenStoreClient.OpenSocketAsync(f.Toolstack.Dom0SocketPath);
            f._watches = new WatchRouter(f._dom0);
            f._probe = await XenStoreClient.OpenSocketAsync(f.Toolstack.Dom0SocketPath);
            f._discovery = new BackendDiscovery(f._watches, 0, ["vif"]).RunAsync(f.OnDevicesAsync, f._stop.Token);
            f.Attacker = await f.Toolstack.CreateDomainAsync(new DomainSpec(AttackerDomid, "attacker") { Pages = 8192, GrantEntries = 8192 });
            f.BystanderGuest = await f.Toolstack.CreateDomainAsync(new DomainSpec(BystanderDomid, "bystander") { Pages = 8192, GrantEntries = 8192 });
            f.AttackerNic = await f.Toolstack.AddNicAsync(AttackerDomid, new NicSpec { Mac = Mac(f.AttackerMac), VifName = f.AttackerVif });
            f.BystanderNic = await f.Toolstack.AddNicAsync(BystanderDomid, new NicSpec { Mac = Mac(f.BystanderMac), VifName = f.BystanderVif });
            f.Bystander = await SimulatedNetfront.AttachAsync(f.BystanderGuest, f.BystanderNic.DevId, new NetfrontOptions { MaxQueues = 1 });
            await f.Bystander.WaitConnectedAsync(Bound);
            await f.WaitBackendStateAsync(f.BystanderNic, XenbusState.Connected);
            f._bystanderWire = f.Ns.Inside(() => PacketSocket.Open(f.BystanderVif));
            return f;
        }
        catch
        {
            await f.DisposeAsync();
            throw;
        }
    }

    private static string Mac(byte[] m) => string.Join(':', m.Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    public NetDevice Device(AttachedDevice nic) => _devices[nic.Path].Device;

    public NetDevice AttackerDevice => Device(AttackerNic);

    /// <summary>The most waits outstanding on one of the backends' watch subscriptions (one per waiting loop).</summary>
    public int MostWaitsOnOneSubscription => _watches.MostWaitsOnOneSubscription;

    public NetQueueStats AttackerStats => AttackerDevice.Counters[0].Snapshot();

    /// <summary>Handshakes a raw attacker netfront and waits until the backend is Connected.</summary>
    /// <param name="txStart">Where the tx ring's indexes start (near 2^32 to cross the wrap).</param>
    public async Task<RawNetfront> ConnectAttackerAsync(bool split = false, bool ctrl = false, uint txStart = 0)
    {
        var raw = await RawNetfront.StartAsync(Attacker, AttackerNic.DevId, split, ctrl, txStart: txStart);
        _raws.Add(raw);
        await WaitBackendStateAsync(AttackerNic, XenbusState.Connected);
        return raw;
    }

    /// <summary>
    /// A well-formed multi-queue attacker frontend (Backend.Net.Tests' TestNetfront per queue, keys
    /// under queue-N/, optionally a control ring), connected; the vif must offer at least that many queues.
    /// </summary>
    public async Task<(TestNetfront[] Queues, TestCtrlRing? Ctrl)> ConnectMultiQueueAttackerAsync(int queues, bool ctrl)
    {
        var dom = Attacker.Domain;
        string frontend = $"{Attacker.DomainPath}/device/vif/{AttackerNic.DevId}";
        await using var xs = await Attacker.OpenXenStoreAsync();
        var fronts = Enumerable.Range(0, queues).Select(_ => new TestNetfront(dom, split: false, txPages: 16, rxPages: 64)).ToArray();
        var ring = ctrl ? new TestCtrlRing(dom) : null;
        await xs.WriteAsync(frontend + "/multi-queue-num-queues", queues.ToString(CultureInfo.InvariantCulture));
        for (int i = 0; i < queues; i++)
            await fronts[i].WriteKeysAsync(xs, $"{frontend}/queue-{i}", new Dictionary<string, string>());
        foreach (var (k, v) in new Dictionary<string, string> { ["request-rx-copy"] = "1", ["feature-rx-notify"] = "1", ["feature-sg"] = "1" })
            await xs.WriteAsync($"{frontend}/{k}", v);
        if (ring is not null)
            await ring.WriteKeysAsync(xs, frontend);
        await xs.WriteAsync(frontend + "/state", "4");
        await WaitBackendStateAsync(AttackerNic, XenbusState.Connected);
        return (fronts, ring);
    }

    /// <summary>The attacker frontend closes (Closed, then Initialising) and the backend follows to InitWait.</summary>
    public async Task CloseAttackerFrontendAsync()
    {
        string frontend = $"{Attacker.DomainPath}/device/vif/{AttackerNic.DevId}";
        await using var xs = await Attacker.OpenXenStoreAsync();
        await xs.WriteAsync(frontend + "/state", "6");
        await WaitBackendStateAsync(AttackerNic, XenbusState.Closed);
        await xs.WriteAsync(frontend + "/state", "1");
        await WaitBackendStateAsync(AttackerNic, XenbusState.InitWait);
    }

    /// <summary>After a fatal error: Closed, back to Initialising, wait for InitWait, then a fresh raw netfront.</summary>
    public async Task<RawNetfront> ReconnectAttackerAsync(RawNetfront old)
    {
        await old.WriteStateAsync(6);
        await WaitBackendStateAsync(AttackerNic, XenbusState.Closed);
        await old.WriteStateAsync(1);
        await WaitBackendStateAsync(AttackerNic, XenbusState.InitWait);
        _raws.Remove(old);
        await old.DisposeAsync();
        return await ConnectAttackerAsync();
    }

    public async Task WaitBackendStateAsync(AttachedDevice nic, XenbusState state)
    {
        string expected = ((int)state).ToString(CultureInfo.InvariantCulture);
        await Bounded.UntilAsync(async () =>
        {
            AssertHostAlive();
            return await _probe.TryReadStringAsync(nic.BackendPath + "/state") == expected;
        }, Bound, $"{nic.BackendPath} state {state}; log: {string.Join(" | ", Log)}");
    }

    /// <summary>FATAL (xenvif_fatal_tx_err): error node written, backend Closing, one fatal reset counted.</summary>
    public async Task AssertAttackerFatalAsync(string expected)
    {
        await WaitBackendStateAsync(AttackerNic, XenbusState.Closing);
        string? error = await _probe.TryReadStringAsync($"/local/domain/0/error/{AttackerNic.Path.NodeName}/error");
        Assert.False(string.IsNullOrEmpty(error), "no error node written");
        Assert.Contains(expected, error);
    }

    /// <summary>No device's lifecycle has ended: nothing crashed (the backend "process" is this one).</summary>
    public void AssertHostAlive()
    {
        foreach (var (path, (_, run)) in _devices)
        {
            if (run.IsFaulted)
                throw new InvalidOperationException($"the lifecycle of {path} crashed", run.Exception);
        }
        Assert.False(_discovery.IsCompleted, "device discovery stopped");
    }

    /// <summary>The bystander's vif still carries frames both ways, byte for byte.</summary>
    public async Task AssertBystanderServedAsync(int round)
    {
        AssertHostAlive();
        Assert.True(_devices.TryGetValue(BystanderNic.Path, out var d) && !d.Run.IsCompleted, "the bystander's vif stopped being served");
        var wire = _bystanderWire!;
        var outbound = Frames.Raw(100 + round % 900, TapMac, BystanderMac, seed: (byte)round);
        Assert.Equal(NetifRsp.Okay, await Bystander.SendAsync(outbound).WaitAsync(Bound));
        // Frames of earlier rounds may still be queued on the socket; ours must come within the bound.
        byte[]? seen;
        do
            seen = wire.Receive((int)Bound.TotalMilliseconds);
        while (seen is not null && !seen.AsSpan().SequenceEqual(outbound));
        Assert.Equal(outbound, seen);
        var inbound = Frames.Raw(120 + round % 900, BystanderMac, TapMac, seed: (byte)(round + 1));
        wire.Send(inbound);
        using var cts = new CancellationTokenSource(Bound);
        Assert.Equal(inbound, (await Bystander.ReceiveAsync(cts.Token)).Data);
    }

    /// <summary>Keeps the bystander's traffic going until <paramref name="until"/> completes.</summary>
    public async Task<int> BystanderDuringAsync(Task until)
    {
        int rounds = 0;
        while (!until.IsCompleted)
            await AssertBystanderServedAsync(rounds++);
        await until;
        await AssertBystanderServedAsync(rounds++);
        return rounds;
    }

    /// <summary>
    /// Open fds that are not the runtime's own assembly files (it maps a .dll the first time some code
    /// path needs it, which would otherwise count against the backend).
    /// </summary>
    public static Dictionary<string, string> Fds() =>
        ProcessProbe.FdTargets().Where(kv => !kv.Value.EndsWith(".dll", StringComparison.Ordinal)).ToDictionary();

    public static void AssertFdsBounded(Dictionary<string, string> before, int slack) => ProcessProbe.AssertFdsBounded(before, Fds(), slack);

    private async Task OnDevicesAsync(IReadOnlySet<DevicePath> present)
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
                Grants = Grants,
                OpenEventChannels = () => Host.OpenEventChannels(0),
                Queue = _queue,
                Log = Log.Enqueue,
                TapRetryInterval = _tapRetry,
                MaxQueues = _maxQueues,
                TapRecreated = _replumb ? ReplumbAsync : null,
            });
            var lifecycle = new BackendLifecycle(xenbus, device, Log.Enqueue);
            _devices[path] = (device, Task.Run(() => lifecycle.RunAsync(_stop.Token)));
        }
    }

    /// <summary>The bridge a vif's hotplug puts it on (the attacker's only, when asked for).</summary>
    public string? BridgeFor(string vif) => vif == AttackerVif ? _attackerBridge : null;

    private Task ReplumbAsync(string tap, CancellationToken cancellationToken)
    {
        NamespaceVifHotplug.Plumb(Ns, tap, BridgeFor(tap));
        Interlocked.Increment(ref Replumbs);
        return Task.CompletedTask;
    }

    /// <summary>Writes a backend key as the toolstack would (dom0), e.g. <c>rate</c>, which the backend watches.</summary>
    public Task WriteBackendKeyAsync(AttachedDevice nic, string key, string value) =>
        _probe.WriteAsync($"{nic.BackendPath}/{key}", value);

    /// <summary>The device's xenbus error node, or null.</summary>
    public Task<string?> ErrorNodeAsync(AttachedDevice nic) =>
        _probe.TryReadStringAsync($"/local/domain/0/error/{nic.Path.NodeName}/error");

    public async ValueTask DisposeAsync()
    {
        _bystanderWire?.Dispose();
        foreach (var raw in _raws)
            await raw.DisposeAsync();
        if (Bystander is not null)
            await Bystander.DisposeAsync();
        _stop.Cancel();
        foreach (var (device, run) in _devices.Values)
        {
            try { await run; } catch (OperationCanceledException) { }
            await device.DisposeAsync();
        }
        try { await _discovery; } catch (OperationCanceledException) { }
        if (_watches is not null)
            await _watches.DisposeAsync();
        if (_dom0 is not null)
            await _dom0.DisposeAsync();
        if (_probe is not null)
            await _probe.DisposeAsync();
        if (Toolstack is not null)
            await Toolstack.DisposeAsync();
        await XenStore.DisposeAsync();
        Grants?.Dispose();
        Ns.Dispose();
        Host.Dispose();
    }
}
