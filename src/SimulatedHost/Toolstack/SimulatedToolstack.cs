using System.Collections.Concurrent;
using System.Globalization;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>
/// libxl/xl for the simulated host: creates domains, adds and removes vbds and vifs, and destroys
/// domains, writing the xenstore nodes, permissions and waits of libxl 4.17 (see docs in the member
/// comments for the few places it differs). It acts as dom0 through its own xenstored socket.
/// </summary>
public sealed class SimulatedToolstack : IAsyncDisposable
{
    private const string ScriptDir = "/etc/xen/scripts";
    private readonly SimulatedXenHost _host;
    private readonly XenStoreServer _server;
    private readonly ToolstackOptions _options;
    private readonly string _socketDirectory;
    private readonly bool _ownsSocketDirectory;
    private readonly ConcurrentDictionary<uint, XenStoreListener> _listeners = new();
    private readonly ConcurrentDictionary<ushort, SimulatedGuest> _guests = new();
    private XenStoreClient _dom0 = null!;
    private WatchRouter _router = null!;

    private SimulatedToolstack(SimulatedXenHost host, XenStoreServer server, ToolstackOptions options)
    {
        _host = host;
        _server = server;
        _options = options;
        HotplugScripts = options.HotplugScripts ?? new DefaultHotplugScripts();
        _ownsSocketDirectory = options.SocketDirectory is null;
        _socketDirectory = options.SocketDirectory ?? Directory.CreateTempSubdirectory("xen-sim-").FullName;
    }

    public SimulatedXenHost Host => _host;

    public XenStoreServer XenStore => _server;

    public ToolstackOptions Options => _options;

    public IHotplugScripts HotplugScripts { get; }

    /// <summary>The toolstack's own privileged connection.</summary>
    public XenStoreClient Dom0 => _dom0;

    /// <summary>Where a backend (in this process or a worker) connects to act as dom0.</summary>
    public string Dom0SocketPath => SocketPathFor(0);

    /// <summary>
    /// Starts the toolstack and, like xen-init-dom0, names dom0 in xenstore. The xenstored owns the tree;
    /// the toolstack only needs one socket per domid it serves.
    /// </summary>
    public static async Task<SimulatedToolstack> StartAsync(SimulatedXenHost host, XenStoreServer server, ToolstackOptions? options = null, CancellationToken cancellationToken = default)
    {
        var toolstack = new SimulatedToolstack(host, server, options ?? new ToolstackOptions());
        try
        {
            toolstack._dom0 = await XenStoreClient.OpenSocketAsync(toolstack.Dom0SocketPath, cancellationToken: cancellationToken).ConfigureAwait(false);
            toolstack._router = new WatchRouter(toolstack._dom0);
            await toolstack._dom0.WriteAsync("/local/domain/0/name", "Domain-0", cancellationToken).ConfigureAwait(false);
            await toolstack._dom0.WriteAsync("/local/domain/0/domid", "0", cancellationToken).ConfigureAwait(false);
            return toolstack;
        }
        catch
        {
            await toolstack.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The xenstored socket whose connections act as <paramref name="domid"/>.</summary>
    public string SocketPathFor(uint domid) =>
        _listeners.GetOrAdd(domid, id => _server.Listen(Path.Combine(_socketDirectory, $"d{id}.sock"), id)).SocketPath;

    public SimulatedGuest GetGuest(ushort domid) =>
        _guests.TryGetValue(domid, out var guest) ? guest : throw new KeyNotFoundException($"no guest with domid {domid}");

    /// <summary>
    /// <c>xl create</c> up to the devices: the simulated domain, the nodes <c>libxl__domain_make</c> writes
    /// (one transaction), then the introduction that fires @introduceDomain.
    /// </summary>
    public async Task<SimulatedGuest> CreateDomainAsync(DomainSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var domain = _host.CreateDomain(spec.Domid, spec.Pages, spec.GrantEntries);
        var uuid = Guid.NewGuid();
        try
        {
            await _dom0.RunTransactionAsync(t => DomainNodes.WriteAsync(t, spec, uuid, cancellationToken), cancellationToken).ConfigureAwait(false);
            _server.IntroduceDomain(spec.Domid);
        }
        catch
        {
            _host.DestroyDomain(spec.Domid);
            throw;
        }
        var guest = new SimulatedGuest(_host, domain, spec, SocketPathFor(spec.Domid), uuid);
        _guests[spec.Domid] = guest;
        return guest;
    }

    /// <summary>
    /// <c>xl block-attach</c> / a disk of <c>xl create</c> with the phy backend: writes backend/vbd and
    /// device/vbd in one transaction, waits for the backend to reach InitWait, then runs the hotplug script
    /// with "add".
    /// </summary>
    public async Task<AttachedDevice> AddDiskAsync(ushort domid, DiskSpec disk, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(disk);
        var guest = GetGuest(domid);
        int devid = VirtualDiskNumber.Parse(disk.Vdev);
        string script = AbsPath(disk.Script);
        var device = new AttachedDevice(new DevicePath(disk.BackendDomid, "vbd", domid, (uint)devid), script);
        bool discard = disk.DiscardEnable ?? disk.ReadWrite;

        var back = new List<KeyValuePair<string, string>>
        {
            new("params", disk.Target),
            new("script", script),
            new("frontend-id", Num(domid)),
            new("online", "1"),
            new("removable", disk.Removable ? "1" : "0"),
            new("bootable", "1"),
            new("state", State(XenbusState.Initialising)),
            new("dev", disk.Vdev),
            new("type", "phy"),
            new("mode", disk.ReadWrite ? "w" : "r"),
            new("device-type", disk.IsCdrom ? "cdrom" : "disk"),
        };
        if (disk.DirectIoSafe)
            back.Add(new("direct-io-safe", "1"));
        back.Add(new("discard-enable", discard ? "1" : "0"));
        // libxl 4.17 names the disk protocol (xen or virtio) for every disk; the lab's recording has it.
        back.Add(new("specification", "xen"));

        var front = new List<KeyValuePair<string, string>>
        {
            new("backend-id", Num(disk.BackendDomid)),
            new("state", State(XenbusState.Initialising)),
            new("virtual-device", Num(devid)),
            new("device-type", disk.IsCdrom ? "cdrom" : "disk"),
            new("trusted", disk.Trusted ? "1" : "0"),
        };
        // Pre-2.6.26 PV frontends needed the toolstack to name the ABI; libxl still writes it for PV guests.
        if (guest.Spec.Type == GuestType.Pv)
            front.Add(new("protocol", "x86_64-abi"));

        await AddDeviceAsync(device, back, front, [], cancellationToken).ConfigureAwait(false);
        guest.Remember(disk);
        return device;
    }

    /// <summary><c>xl network-attach</c> / a vif of <c>xl create</c>: as <see cref="AddDiskAsync"/>, script action "online".</summary>
    public async Task<AttachedDevice> AddNicAsync(ushort domid, NicSpec nic, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(nic);
        var guest = GetGuest(domid);
        int devid = nic.DevId ?? await NextDevIdAsync(domid, "vif", cancellationToken).ConfigureAwait(false);
        string script = AbsPath(nic.Script);
        string mac = nic.Mac ?? string.Create(CultureInfo.InvariantCulture, $"00:16:3e:{(domid >> 8) & 0xff:x2}:{domid & 0xff:x2}:{devid & 0xff:x2}");
        var device = new AttachedDevice(new DevicePath(nic.BackendDomid, "vif", domid, (uint)devid), script);

        var back = new List<KeyValuePair<string, string>>
        {
            new("frontend-id", Num(domid)),
            new("online", "1"),
            new("state", State(XenbusState.Initialising)),
            new("script", script),
        };
        if (nic.VifName is not null) back.Add(new("vifname", nic.VifName));
        back.Add(new("mac", mac));
        if (nic.Ip is not null) back.Add(new("ip", nic.Ip));
        if (nic.GatewayDev is not null) back.Add(new("gatewaydev", nic.GatewayDev));
        if (nic.Rate is { } rate)
            back.Add(new("rate", string.Create(CultureInfo.InvariantCulture, $"{rate.BytesPerInterval},{rate.IntervalMicroseconds}")));
        if (nic.Mtu != 1500) back.Add(new("mtu", Num(nic.Mtu)));
        back.Add(new("bridge", nic.Bridge));
        back.Add(new("handle", Num(devid)));
        back.Add(new("type", "vif"));
        // Makes Linux netback wait for the hotplug script before Connected, so libxl can see InitWait.
        back.Add(new("hotplug-status", ""));

        var front = new List<KeyValuePair<string, string>>
        {
            new("backend-id", Num(nic.BackendDomid)),
            new("state", State(XenbusState.Initialising)),
            new("handle", Num(devid)),
            new("mac", mac),
            new("trusted", nic.Trusted ? "1" : "0"),
        };
        var roFront = new List<KeyValuePair<string, string>> { new("mtu", Num(nic.Mtu)) };

        await AddDeviceAsync(device, back, front, roFront, cancellationToken).ConfigureAwait(false);
        // libxl__device_nic_setdefault writes the MAC it picked into the domain config, which a save
        // or migration carries: the restored guest keeps its MAC (and its peers' ARP caches stay right).
        guest.Remember(nic with { DevId = devid, Mac = mac });
        return device;
    }

    private async Task AddDeviceAsync(AttachedDevice device, List<KeyValuePair<string, string>> back, List<KeyValuePair<string, string>> front, List<KeyValuePair<string, string>> roFront, CancellationToken ct)
    {
        await _dom0.RunTransactionAsync(async t =>
        {
            // libxl__device_exists: the backend directory is the device's identity.
            if (await LibxlXs.ExistsAsync(t, device.BackendPath, ct).ConfigureAwait(false))
                throw new InvalidOperationException($"device already exists in xenstore: {device.BackendPath}");
            await DeviceNodes.AddAsync(t, device, back, front, roFront, ct).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);

        // libxl__wait_device_connection, then the hotplug script; libxl does not wait for Connected.
        await DeviceStateWait.WaitAsync(_router, device.BackendPath + "/state", XenbusState.InitWait, _options.InitTimeout, ct).ConfigureAwait(false);
        await RunHotplugAsync(device, device.Kind == "vif" ? "online" : "add", ct).ConfigureAwait(false);
    }

    public Task DetachDiskAsync(AttachedDevice disk, CancellationToken cancellationToken = default) => DetachAsync(disk, force: false, cancellationToken);

    public Task DetachNicAsync(AttachedDevice nic, CancellationToken cancellationToken = default) => DetachAsync(nic, force: false, cancellationToken);

    /// <summary>
    /// <c>libxl__initiate_device_generic_remove</c> as <c>xl block-detach</c>/<c>network-detach</c> run it:
    /// a connected backend gets online=0 and state=5 (Closing), then libxl waits for Closed; a timeout turns
    /// the removal into a forced one (frontend directory deleted first). Then the hotplug script runs
    /// (remove/offline) and every node of the device goes.
    /// </summary>
    public async Task DetachAsync(AttachedDevice device, bool force, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(device);
        string statePath = device.BackendPath + "/state";
        while (true)
        {
            bool wait = await _dom0.RunTransactionAsync(async t =>
            {
                string? state = await t.TryReadStringAsync(statePath, cancellationToken).ConfigureAwait(false);
                if (force)
                    await LibxlXs.PathCleanupAsync(t, device.FrontendPath, cancellationToken).ConfigureAwait(false);
                if (state is null || XenbusStates.Parse(state) != XenbusState.Connected)
                    return false;
                await t.WriteAsync(device.BackendPath + "/online", "0", cancellationToken).ConfigureAwait(false);
                await t.WriteAsync(statePath, State(XenbusState.Closing), cancellationToken).ConfigureAwait(false);
                return true;
            }, cancellationToken).ConfigureAwait(false);
            if (!wait)
                break;
            try
            {
                await DeviceStateWait.WaitAsync(_router, statePath, XenbusState.Closed, _options.DestroyTimeout, cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (DeviceStateTimeoutException) when (!force)
            {
                force = true;
            }
            catch (DeviceStateTimeoutException)
            {
                break;
            }
            catch (InvalidOperationException)
            {
                break; // the backend removed its state node: nothing left to wait for
            }
        }
        await RunHotplugAsync(device, device.Kind == "vif" ? "offline" : "remove", cancellationToken).ConfigureAwait(false);
        await _dom0.RunTransactionAsync(t => DeviceNodes.DestroyAsync(t, device, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>xl destroy</c>: the guest is paused (its drivers halt), every device is removed forcibly
    /// (frontend directory first, connected backends told to close and given DestroyTimeout to reach
    /// Closed), the domain's directories go, and finally the domain itself, which fires @releaseDomain.
    /// </summary>
    public async Task DestroyDomainAsync(ushort domid, CancellationToken cancellationToken = default)
    {
        var guest = GetGuest(domid);
        await guest.HaltAsync().ConfigureAwait(false);
        var devices = await ListDevicesAsync(domid, cancellationToken).ConfigureAwait(false);
        await Task.WhenAll(devices.Select(d => DetachAsync(d, force: true, cancellationToken))).ConfigureAwait(false);

        string dom = $"/local/domain/{domid}";
        string? vm = await _dom0.TryReadStringAsync(dom + "/vm", cancellationToken).ConfigureAwait(false);
        if (vm is not null)
            await RemoveQuietlyAsync(vm, cancellationToken).ConfigureAwait(false);
        await RemoveQuietlyAsync(dom, cancellationToken).ConfigureAwait(false);
        await RemoveQuietlyAsync($"/libxl/{domid}", cancellationToken).ConfigureAwait(false);

        _guests.TryRemove(domid, out _);
        _host.DestroyDomain(domid);
        _server.ReleaseDomain(domid);
        if (_listeners.TryRemove(domid, out var listener))
            await listener.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// <c>xl save</c> followed by <c>xl restore</c> (or, with <see cref="SaveRestoreSpec.Migrate"/>,
    /// <c>xl migrate</c> to this same host):
    /// <list type="number">
    /// <item>The guest is asked to suspend (control/shutdown = "suspend") and its frontends freeze,
    /// keeping in-flight requests in their shadows; nothing is written to the device nodes, as a
    /// suspended Linux writes nothing.</item>
    /// <item>Save: the source domain is destroyed the way libxl destroys it after the save (forced
    /// device removal, frontend directory first, <see cref="ToolstackOptions.DestroyTimeout"/> for a
    /// backend to close), then a new domain (<see cref="SaveRestoreSpec.NewDomid"/>) is built with fresh
    /// backend and frontend nodes for the same disks and NICs. Migrate: the destination domain and its
    /// devices are built while the source still exists (two backends on one image), the guest resumes
    /// there, and only then is the source destroyed: xl's migrate_domain destroys the source after
    /// "Target reports successful startup", so the guest runs on the destination while the
    /// source's backends are still attached to the suspended source.</item>
    /// <item>The guest kernel resumes in the new domain: the same frontend objects (they model the
    /// guest's memory, which the save carries over) move to the new domid's paths and run Linux's
    /// resume against the fresh backends. Ring pages and grants are re-created on the new domain, as
    /// blkfront_resume re-creates them; the requests themselves come from the shadow.</item>
    /// </list>
    /// Returns once the resume has started; wait for the frontends to connect.
    /// </summary>
    public async Task<SaveRestoreResult> SaveRestoreAsync(ushort domid, SaveRestoreSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var source = GetGuest(domid);
        if (_guests.ContainsKey(spec.NewDomid))
            throw new InvalidOperationException($"domid {spec.NewDomid} is in use");
        var disks = source.Disks;
        var nics = source.Nics;
        var started = System.Diagnostics.Stopwatch.StartNew();

        // libxl__domain_suspend for a PV guest without a suspend event channel.
        await _dom0.WriteAsync(source.DomainPath + "/control/shutdown", "suspend", cancellationToken).ConfigureAwait(false);
        var frontends = await source.SuspendDriversAsync().ConfigureAwait(false);
        TimeSpan suspended = started.Elapsed;

        TimeSpan? sourceGone = null;
        if (!spec.Migrate)
        {
            await DestroyDomainAsync(domid, cancellationToken).ConfigureAwait(false);
            sourceGone = started.Elapsed;
        }

        var target = await CreateDomainAsync(source.Spec with { Domid = spec.NewDomid }, cancellationToken).ConfigureAwait(false);
        var devices = new List<AttachedDevice>();
        foreach (var disk in disks)
            devices.Add(await AddDiskAsync(spec.NewDomid, spec.RestoreDisk?.Invoke(disk) ?? disk, cancellationToken).ConfigureAwait(false));
        foreach (var nic in nics)
            devices.Add(await AddNicAsync(spec.NewDomid, nic, cancellationToken).ConfigureAwait(false));

        foreach (var frontend in frontends)
            await frontend.ResumeAsync(target, cancellationToken).ConfigureAwait(false);

        if (spec.Migrate)
        {
            await DestroyDomainAsync(domid, cancellationToken).ConfigureAwait(false);
            sourceGone = started.Elapsed;
        }
        return new SaveRestoreResult(target, devices, suspended, sourceGone!.Value, started.Elapsed);
    }

    /// <summary>The devices libxl knows for a domain (its /libxl/&lt;domid&gt;/device records).</summary>
    public async Task<IReadOnlyList<AttachedDevice>> ListDevicesAsync(ushort domid, CancellationToken cancellationToken = default)
    {
        var result = new List<AttachedDevice>();
        string root = $"/libxl/{domid}/device";
        foreach (string kind in await TryDirectoryAsync(root, cancellationToken).ConfigureAwait(false))
        {
            foreach (string id in await TryDirectoryAsync(root + "/" + kind, cancellationToken).ConfigureAwait(false))
            {
                string? backend = await _dom0.TryReadStringAsync($"{root}/{kind}/{id}/backend", cancellationToken).ConfigureAwait(false);
                if (backend is null || DevicePath.TryParse(backend) is not { } path)
                    continue;
                string script = await _dom0.TryReadStringAsync(backend + "/script", cancellationToken).ConfigureAwait(false) ?? "";
                result.Add(new AttachedDevice(path, script));
            }
        }
        return result;
    }

    private async Task RunHotplugAsync(AttachedDevice device, string action, CancellationToken ct)
    {
        var env = new Dictionary<string, string>
        {
            ["script"] = device.Script,
            ["XENBUS_TYPE"] = device.Kind,
            ["XENBUS_PATH"] = device.Path.NodeName,
            ["XENBUS_BASE_PATH"] = "backend",
        };
        if (device.Kind == "vif")
        {
            env["vif"] = await _dom0.TryReadStringAsync(device.BackendPath + "/vifname", ct).ConfigureAwait(false)
                ?? $"vif{device.Domid}.{device.DevId}";
            env["type_if"] = "vif";
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.HotplugTimeout);
        try
        {
            await HotplugScripts.RunAsync(new HotplugInvocation(device.Kind, action, device.Script, device.BackendPath, env), _dom0, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"hotplug script {device.Script} {action} for {device.BackendPath} did not finish within {_options.HotplugTimeout}");
        }
    }

    private async Task<int> NextDevIdAsync(ushort domid, string kind, CancellationToken ct)
    {
        int next = 0;
        foreach (string id in await TryDirectoryAsync($"/libxl/{domid}/device/{kind}", ct).ConfigureAwait(false))
            if (int.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= next)
                next = n + 1;
        return next;
    }

    private async Task<IReadOnlyList<string>> TryDirectoryAsync(string path, CancellationToken ct)
    {
        try
        {
            return await _dom0.DirectoryAsync(path, ct).ConfigureAwait(false);
        }
        catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.ENOENT)
        {
            return [];
        }
    }

    private async Task RemoveQuietlyAsync(string path, CancellationToken ct)
    {
        try
        {
            await _dom0.RemoveAsync(path, ct).ConfigureAwait(false);
        }
        catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.ENOENT)
        {
        }
    }

    private static string AbsPath(string script) => script.StartsWith('/') ? script : ScriptDir + "/" + script;

    private static string Num(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string State(XenbusState state) => XenbusStates.Format(state);

    public async ValueTask DisposeAsync()
    {
        foreach (var guest in _guests.Values)
            await guest.HaltAsync().ConfigureAwait(false);
        if (_router is not null)
            await _router.DisposeAsync().ConfigureAwait(false);
        if (_dom0 is not null)
            await _dom0.DisposeAsync().ConfigureAwait(false);
        foreach (var listener in _listeners.Values)
            await listener.DisposeAsync().ConfigureAwait(false);
        _listeners.Clear();
        if (_ownsSocketDirectory)
        {
            try { Directory.Delete(_socketDirectory, recursive: true); } catch (IOException) { }
        }
    }
}
