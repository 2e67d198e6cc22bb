using System.Globalization;
using XenBackends.Backend.Net.Control;
using XenBackends.Native;
using XenBackends.Native.Linux;
using XenBackends.Native.Tap;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Net;

/// <summary>
/// A vif backed by a tap: creates the tap before InitWait (libxl runs vif-bridge right after it),
/// advertises Linux netback's feature set, waits for hotplug-status=connected, then serves each
/// netif queue on its own thread. A guest that breaks the protocol disables the device (reported
/// fatal); it never takes the process down.
/// </summary>
public sealed class NetDevice : IBackendDevice
{
    private readonly NetDeviceOptions _options;
    private readonly Lock _lock = new();
    private TapDevice? _tap;
    private XenbusDevice? _device;
    private NetQueue[] _queues = [];
    private CtrlRing? _ctrl;
    private VifShared? _vif;
    private CancellationTokenSource? _watchStop;
    private Task _watchTask = Task.CompletedTask;
    // Tap loss (the interface deleted under us): 1 while gone; one recovery task at a time.
    private int _tapGone;
    private long _tapLosses, _tapRecreations, _tapAttempts;
    private readonly CancellationTokenSource _life = new();
    private int _disposed;
    private Task _tapRecovery = Task.CompletedTask;
    private TapOffloads _offloads = TapOffloads.None;
    private int _activeQueues;
    // Bridge membership of the tap: -1 unknown, 0 none, else the master's ifindex (in the tap's namespace).
    private TapBridgeWatch? _bridgeWatch;
    private int _bridgeMaster = -1;
    private int _bridgeLossReported;
    private long _bridgeLosses;

    public NetDevice(NetDeviceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxQueues, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.MaxQueues, 64);
        _options = options;
    }

    /// <summary>The tap's name once prepared.</summary>
    public string? InterfaceName => _tap?.Name;

    /// <summary>The guest MAC from the backend's <c>mac</c> key, once connected.</summary>
    public byte[]? GuestMac { get; private set; }

    /// <summary>The rate in force: the <c>rate</c> key as parsed (watched), or the options' default when there is no key; bytes per interval and interval in microseconds (null: unlimited).</summary>
    public (ulong Bytes, ulong Microseconds)? Rate { get; private set; }

    /// <summary>The message of the last fatal protocol error, if any.</summary>
    public string? LastFatalError { get; private set; }

    /// <summary>
    /// Whether the tap currently exists. A deleted tap is reported in the xenbus error node and the log,
    /// guest frames are dropped (and counted as TxDrops) meanwhile, and the device re-creates it every
    /// <see cref="NetDeviceOptions.TapRetryInterval"/> and at the next guest connect.
    /// </summary>
    public bool TapPresent => Volatile.Read(ref _tapGone) == 0;

    /// <summary>Times the tap was found deleted under the device.</summary>
    public long TapLosses => Interlocked.Read(ref _tapLosses);

    /// <summary>Attempts to re-create a deleted tap, failed or not (one per retry interval while it cannot be).</summary>
    public long TapRecreateAttempts => Interlocked.Read(ref _tapAttempts);

    /// <summary>Times the device re-created its deleted tap.</summary>
    public long TapRecreations => Interlocked.Read(ref _tapRecreations);

    /// <summary>The ifindex of the bridge the tap is a port of (0: none; null: not known, e.g. not connected).</summary>
    public int? TapMaster => Volatile.Read(ref _bridgeMaster) is var m && m >= 0 ? m : null;

    /// <summary>
    /// Times the tap stopped being a bridge port while connected (the bridge deleted, or the port
    /// removed): reported like a deleted tap (log, error node) and cleared when it is a port again.
    /// </summary>
    public long BridgeLosses => Interlocked.Read(ref _bridgeLosses);

    /// <summary>The control ring's hash settings of the current connection (initial when there is no ctrl ring).</summary>
    public RxHashSettings HashSettings => _vif?.Hash ?? RxHashSettings.Initial;

    /// <summary>Whether multicast filtering is on now (request-multicast-control, watched).</summary>
    public bool MulticastControl => _vif?.Multicast.Enabled ?? false;

    /// <summary>Per-queue counters of the current connection (empty when not connected).</summary>
    public IReadOnlyList<NetQueueCounters> Counters
    {
        get
        {
            lock (_lock)
                return [.. _queues.Select(q => q.Counters)];
        }
    }

    public async Task PrepareAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        _device = device;
        string? vifname = await device.ReadBackendAsync("vifname", cancellationToken).ConfigureAwait(false);
        string name = string.IsNullOrEmpty(vifname)
            ? $"vif{device.FrontendId}.{device.Path.DevId}"
            : vifname;
        TapDevice.ValidateName(name);
        if (_tap is null)
        {
            // Every queue fd is opened now, by name, while the interface is still ours and in our
            // namespace: once vif-bridge has run it may have been renamed or moved, and TUNSETIFF by
            // name would then attach to nothing (or to something else). Connect picks among these fds.
            _tap = TapDevice.Create(name, queueCount: _options.MaxQueues, vnetHeader: true, multiQueue: _options.MaxQueues > 1);
            _tap.SetMacAddress(_options.TapMac);
            // Until a frontend says what it takes, let the kernel finish every frame itself.
            _tap.SetOffloads(TapOffloads.None);
        }
        await NetBackendKeys.PublishAsync(device, _options.MaxQueues, cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> IsReadyToConnectAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        if (!_options.WaitForHotplugStatus)
            return true;
        return await device.ReadBackendAsync("hotplug-status", cancellationToken).ConfigureAwait(false) == "connected";
    }

    public async Task ConnectAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        var tap = _tap ?? throw new InvalidOperationException("ConnectAsync before PrepareAsync");
        var config = await NetFrontendConfig.ReadAsync(device, _options.MaxQueues, cancellationToken).ConfigureAwait(false);
        GuestMac = await ReadMacAsync(device, cancellationToken).ConfigureAwait(false);
        Rate = EffectiveRate(await device.ReadBackendAsync("rate", cancellationToken).ConfigureAwait(false));

        // Only a running queue thread notices a deletion (EBADFD, EPOLLERR), and none runs before the
        // first connect or between connections, exactly when vif-bridge and administrators act on the
        // tap. Its fds are then bound to nothing: TUNSETQUEUE would answer EINVAL and TUNSETOFFLOAD
        // EBADFD (tun_set_queue, __tun_chr_ioctl in drivers/net/tun.c), so ask before using them.
        if (Volatile.Read(ref _tapGone) == 0 && tap.IsGone)
            MarkTapGone("found at connect");
        // A guest (re)connecting while the tap is deleted gets it back now, not at the next retry.
        if (Volatile.Read(ref _tapGone) != 0)
        {
            RecreateTap(tap);
            if (_options.TapRecreated is { } replumb)
                await replumb(tap.Name, cancellationToken).ConfigureAwait(false);
        }
        bool goneSinceCheck = false;
        lock (_lock)
        {
            _activeQueues = config.Queues.Count;
            _offloads = OffloadsFor(config.Features);
            try
            {
                tap.SetActiveQueues(_activeQueues);
                tap.SetOffloads(_offloads);
            }
            catch (LinuxCallException) when (tap.IsGone)
            {
                goneSinceCheck = true;
            }
        }
        // Deleted since the check: the same fault as under a connected vif, so the same recovery,
        // which sets the active queues and offloads recorded above on the new tap.
        if (goneSinceCheck)
            OnTapGone(-1);
        var domid = checked((ushort)device.FrontendId);
        var queues = new List<NetQueue>();
        CtrlRing? ctrl = null;
        VifShared vif;
        try
        {
            if (config.Ctrl is { } ctrlKeys)
                ctrl = OpenCtrlRing(domid, ctrlKeys, config.Queues.Count);
            vif = new VifShared(new MulticastFilter(config.Features.MulticastControl), ctrl?.Processor, _options.Queue.ClockMicroseconds);
            for (int i = 0; i < config.Queues.Count; i++)
                queues.Add(OpenQueue(i, domid, config.Queues[i], config.Features, tap.Queues[i], vif));
        }
        catch (Exception e)
        {
            foreach (var q in queues)
                q.Dispose();
            ctrl?.Dispose();
            if (e is FrontendConfigurationException)
                throw;
            throw new FrontendConfigurationException(device.FrontendPath, null, "cannot map rings or bind event channels: " + e.Message);
        }
        vif.Queues = [.. queues];
        lock (_lock)
        {
            _queues = vif.Queues;
            _ctrl = ctrl;
            _vif = vif;
        }
        LastFatalError = null;
        // A new key or mapping changes where queued frames belong: let every queue look again.
        if (ctrl is not null)
            ctrl.Processor.Changed += _ => { foreach (var q in vif.Queues) q.Wake(); };
        ctrl?.Start();
        foreach (var q in queues)
            q.Start();
        StartWatches(device, vif);
        StartBridgeWatch();
    }

    /// <summary>(Re)starts following the tap's bridge membership; a failure only costs that report.</summary>
    private void StartBridgeWatch()
    {
        var tap = _tap;
        StopBridgeWatch();
        if (tap is null || Volatile.Read(ref _tapGone) != 0)
            return;
        try
        {
            var watch = TapBridgeWatch.Start(tap.Queues[0], tap.Name, OnTapMaster, m => _options.Log?.Invoke($"vif {_device?.Path}: {m}"));
            lock (_lock)
                _bridgeWatch = watch;
        }
        catch (Exception e) when (e is LinuxCallException or ArgumentException)
        {
            _options.Log?.Invoke($"vif {_device?.Path}: cannot watch the bridge of tap {tap.Name}: {e.Message}");
        }
    }

    private void StopBridgeWatch()
    {
        TapBridgeWatch? watch;
        lock (_lock)
        {
            watch = _bridgeWatch;
            _bridgeWatch = null;
        }
        watch?.Dispose();
        Volatile.Write(ref _bridgeMaster, -1);
    }

    // On the bridge watch's thread. Only a port that was on a bridge and is not any more is a fault:
    // a tap that was never bridged (vif-route, vif-nat, a test) has nothing to lose.
    private void OnTapMaster(int master)
    {
        int previous = Interlocked.Exchange(ref _bridgeMaster, master);
        var device = _device;
        string name = _tap?.Name ?? "?";
        if (master == 0 && previous > 0 && _tap is { IsGone: false })
        {
            Interlocked.Increment(ref _bridgeLosses);
            Volatile.Write(ref _bridgeLossReported, 1);
            string text = $"tap {name} is no longer a port of its bridge (ifindex {previous}): the bridge was deleted or the port removed; the guest's frames reach no bridge until the vif hotplug script (vif-bridge online) runs again";
            _options.Log?.Invoke($"vif {device?.Path}: {text}");
            Report(device, () => device!.WriteErrorAsync(text));
        }
        else if (master > 0 && Interlocked.Exchange(ref _bridgeLossReported, 0) != 0)
        {
            _options.Log?.Invoke($"vif {device?.Path}: tap {name} is a bridge port again (ifindex {master})");
            Report(device, () => device!.ClearErrorAsync());
        }
    }

    private void Report(XenbusDevice? device, Func<Task> write)
    {
        if (device is null)
            return;
        _ = Task.Run(async () =>
        {
            try
            {
                await write().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _options.Log?.Invoke($"vif {device.Path}: updating the error node failed: {e.Message}");
            }
        });
    }

    private CtrlRing OpenCtrlRing(ushort domid, CtrlRingKeys keys, int numQueues)
    {
        SharedMemory? memory = null;
        IEventChannels? evtchn = null;
        try
        {
            memory = _options.Grants.Map(domid, [keys.RingRef], writable: true);
            evtchn = _options.OpenEventChannels();
            uint port = evtchn.BindInterdomain(domid, keys.EventChannel);
            var processor = new CtrlRequestProcessor(domid, _options.Grants, numQueues);
            return new CtrlRing(domid, memory, evtchn, port, processor, message => OnFatal(-1, message));
        }
        catch
        {
            evtchn?.Dispose();
            memory?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// rate and request-multicast-control are watched for the life of the connection
    /// (xen_net_rate_changed, xen_mcast_ctrl_changed): a change applies without a reconnect.
    /// </summary>
    private void StartWatches(XenbusDevice device, VifShared vif)
    {
        var stop = new CancellationTokenSource();
        _watchStop = stop;
        _watchTask = Task.Run(async () =>
        {
            try
            {
                await using var rateWatch = await device.Watches.SubscribeAsync(device.BackendPath + "/rate", stop.Token).ConfigureAwait(false);
                await using var mcastWatch = await device.Watches.SubscribeAsync(device.FrontendPath + "/request-multicast-control", stop.Token).ConfigureAwait(false);
                WatchSubscription[] watches = [rateWatch, mcastWatch];
                while (true)
                {
                    // The first wait takes the change every subscription starts with: both keys are
                    // read once at start, so a change between connect and here counts.
                    await WatchSubscription.WaitAnyAsync(watches, stop.Token).ConfigureAwait(false);
                    var rate = EffectiveRate(await device.ReadBackendAsync("rate", stop.Token).ConfigureAwait(false));
                    if (rate != Rate)
                    {
                        // Queues first: whoever sees the new Rate can count on every queue applying
                        // it before its next guest-TX pass (a test that advanced its clock on seeing
                        // Rate got one window at the old rate now and then).
                        foreach (var q in vif.Queues)
                            q.SetRate(rate);
                        Rate = rate;
                    }
                    // Anything but "1" means off, as xenbus_read_unsigned(..., 0) would give for junk.
                    vif.Multicast.Enabled = await device.ReadFrontendAsync("request-multicast-control", stop.Token).ConfigureAwait(false) == "1";
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e)
            {
                _options.Log?.Invoke($"vif {device.Path}: watching rate/request-multicast-control failed: {e.Message}");
            }
        });
    }

    private NetQueue OpenQueue(int index, ushort domid, NetQueueKeys keys, NetFrontendFeatures features, TapQueue tapQueue, VifShared vif)
    {
        SharedMemory? tx = null, rx = null;
        IEventChannels? evtchn = null;
        try
        {
            tx = _options.Grants.Map(domid, [keys.TxRingRef], writable: true);
            rx = _options.Grants.Map(domid, [keys.RxRingRef], writable: true);
            evtchn = _options.OpenEventChannels();
            uint txPort = evtchn.BindInterdomain(domid, keys.TxEventChannel);
            uint rxPort = keys.RxEventChannel == keys.TxEventChannel ? txPort : evtchn.BindInterdomain(domid, keys.RxEventChannel);
            return new NetQueue(index, domid, _options.Grants, evtchn, txPort, rxPort, tx, rx, tapQueue, features,
                _options.Queue, vif, Rate, OnFatal, OnTapGone);
        }
        catch
        {
            evtchn?.Dispose();
            tx?.Dispose();
            rx?.Dispose();
            throw;
        }
    }

    /// <summary>What the kernel may leave unfinished in frames we read: only what the frontend can take.</summary>
    internal static TapOffloads OffloadsFor(NetFrontendFeatures f)
    {
        // TUN_F_CSUM covers IPv4 and IPv6 alike; a frontend that takes only one gets the other
        // completed in software on the rx path.
        if (!f.Ipv4CsumOffload && !f.Ipv6CsumOffload)
            return TapOffloads.None;
        var offloads = TapOffloads.Checksum;
        // A TSO frame is multi-slot, so it needs feature-sg as well (Linux drops TSO without SG too).
        if (f.Sg && f.GsoTcpV4 && f.Ipv4CsumOffload)
            offloads |= TapOffloads.Tso4;
        if (f.Sg && f.GsoTcpV6 && f.Ipv6CsumOffload)
            offloads |= TapOffloads.Tso6;
        return offloads;
    }

    private void OnFatal(int queue, string message)
    {
        string text = queue < 0 ? message : $"queue {queue}: {message}";
        LastFatalError = text;
        _options.Log?.Invoke($"vif {_device?.Path}: fatal: {text}");
        var device = _device;
        if (device is null)
            return;
        // Reported from the queue thread without waiting: xenbus_dev_fatal, then the lifecycle tears down.
        _ = Task.Run(async () =>
        {
            try
            {
                await device.ReportFatalAsync(text).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _options.Log?.Invoke($"vif {device.Path}: reporting a fatal error failed: {e.Message}");
            }
        });
    }

    // From a queue thread (or connect, queue -1): the tap answered EBADFD. Report once, then try to bring it back.
    private void OnTapGone(int queue)
    {
        if (!MarkTapGone(queue < 0 ? "found at connect" : $"queue {queue}: EBADFD"))
            return;
        // Chained, not replaced: a second deletion during the re-plumbing of the first still gets a recovery.
        lock (_lock)
            _tapRecovery = _tapRecovery.ContinueWith(_ => RecoverTapAsync(_life.Token), CancellationToken.None,
                TaskContinuationOptions.None, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Records the loss once (false when it was already known) and logs how it was found.</summary>
    private bool MarkTapGone(string how)
    {
        if (Interlocked.CompareExchange(ref _tapGone, 1, 0) != 0)
            return false;
        Interlocked.Increment(ref _tapLosses);
        string name = _tap?.Name ?? "?";
        _options.Log?.Invoke($"vif {_device?.Path}: tap {name} was deleted under the backend ({how}); guest frames are dropped until it is re-created");
        return true;
    }

    private async Task RecoverTapAsync(CancellationToken cancellationToken)
    {
        var device = _device;
        var tap = _tap;
        // Already back (a guest connect re-created and re-plumbed it): nothing owed.
        if (device is null || tap is null || Volatile.Read(ref _tapGone) == 0)
            return;
        try
        {
            await device.WriteErrorAsync($"tap {tap.Name} was deleted under the backend: guest traffic is dropped; re-creating it every {_options.TapRetryInterval.TotalSeconds:0.###} s", cancellationToken).ConfigureAwait(false);
            string? lastProblem = null;
            while (Volatile.Read(ref _tapGone) != 0)
            {
                try
                {
                    RecreateTap(tap);
                    break;
                }
                catch (Exception e) when (e is LinuxCallException or InvalidOperationException)
                {
                    // Logged once per distinct cause: a name squatted for hours must not flood the log.
                    if (e.Message != lastProblem)
                    {
                        lastProblem = e.Message;
                        _options.Log?.Invoke($"vif {device.Path}: cannot re-create tap {tap.Name} yet: {e.Message}");
                        await device.WriteErrorAsync($"tap {tap.Name} was deleted under the backend and cannot be re-created yet ({e.Message}): guest traffic is dropped; retrying every {_options.TapRetryInterval.TotalSeconds:0.###} s", cancellationToken).ConfigureAwait(false);
                    }
                }
                await Task.Delay(_options.TapRetryInterval, cancellationToken).ConfigureAwait(false);
            }
            if (_options.TapRecreated is { } replumb)
            {
                await replumb(tap.Name, cancellationToken).ConfigureAwait(false);
                await device.ClearErrorAsync(cancellationToken).ConfigureAwait(false);
                // The new interface, wherever the re-plumbing put it.
                lock (_lock)
                {
                    if (_queues.Length == 0)
                        return;
                }
                StartBridgeWatch();
            }
            else
            {
                await device.WriteErrorAsync($"tap {tap.Name} was deleted under the backend and has been re-created, down and on no bridge: run the vif hotplug script again (vif-bridge online) to restore the guest's network", cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _options.Log?.Invoke($"vif {device.Path}: recovering tap {tap.Name} failed: {e.Message}");
            try
            {
                await device.WriteErrorAsync($"tap {tap.Name} was re-created but re-plumbing it failed: {e.Message}", CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // xenstore is going away; the log line stands.
            }
        }
    }

    /// <summary>Attaches our fds to a new interface of the same name and restores what the device set on the old one.</summary>
    private void RecreateTap(TapDevice tap)
    {
        lock (_lock)
        {
            if (Volatile.Read(ref _tapGone) == 0)
                return;
            Interlocked.Increment(ref _tapAttempts);
            tap.Recreate();
            tap.SetMacAddress(_options.TapMac);
            if (_activeQueues > 0)
                tap.SetActiveQueues(_activeQueues);
            tap.SetOffloads(_offloads);
            Volatile.Write(ref _tapGone, 0);
            Interlocked.Increment(ref _tapRecreations);
            foreach (var q in _queues)
                q.TapRestored();
        }
        _options.Log?.Invoke($"vif {_device?.Path}: tap {tap.Name} re-created (down, on no bridge until re-plumbed)");
    }

    private static async Task<byte[]> ReadMacAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        string? text = await device.ReadBackendAsync("mac", cancellationToken).ConfigureAwait(false);
        return ParseMac(text) ?? throw new FrontendConfigurationException(device.BackendPath + "/mac", text, "not a MAC address xx:xx:xx:xx:xx:xx");
    }

    public static byte[]? ParseMac(string? text)
    {
        if (text is null || text.Length != 17)
            return null;
        var mac = new byte[6];
        for (int i = 0; i < 6; i++)
        {
            if (i > 0 && text[i * 3 - 1] != ':')
                return null;
            if (!byte.TryParse(text.AsSpan(i * 3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out mac[i]))
                return null;
        }
        return mac;
    }

    // libxl writes `rate` only when the xl config has rate=, so no key means "the toolstack set nothing"
    // and the host's default applies; a key present is the toolstack's word, even one that means unlimited.
    private (ulong Bytes, ulong Microseconds)? EffectiveRate(string? key) =>
        key is null ? _options.DefaultRate : ParseRate(key);

    /// <summary><c>rate</c> = "&lt;bytes&gt;,&lt;usec&gt;" (libxl); anything else means unlimited, as in Linux.</summary>
    public static (ulong Bytes, ulong Microseconds)? ParseRate(string? text)
    {
        if (text is null)
            return null;
        int comma = text.IndexOf(',');
        if (comma <= 0
            || !ulong.TryParse(text.AsSpan(0, comma), NumberStyles.None, CultureInfo.InvariantCulture, out ulong bytes)
            || !ulong.TryParse(text.AsSpan(comma + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ulong usec)
            || usec == 0)
            return null;
        return (bytes, usec);
    }

    public async Task DisconnectAsync(CancellationToken cancellationToken)
    {
        NetQueue[] queues;
        CtrlRing? ctrl;
        lock (_lock)
        {
            queues = _queues;
            ctrl = _ctrl;
            _queues = [];
            _ctrl = null;
            _vif = null;
        }
        StopBridgeWatch();
        _watchStop?.Cancel();
        await _watchTask.ConfigureAwait(false);
        _watchStop?.Dispose();
        _watchStop = null;
        ctrl?.Dispose();
        foreach (var q in queues)
            q.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        // Owners (the xenbus lifecycle, a test harness) may both dispose the device.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _life.CancelAsync().ConfigureAwait(false);
        await _tapRecovery.ConfigureAwait(false);
        _life.Dispose();
        await DisconnectAsync(CancellationToken.None).ConfigureAwait(false);
        // Closing the last queue fd removes the non-persistent tap: the vif goes with the device.
        _tap?.Dispose();
        _tap = null;
    }
}
