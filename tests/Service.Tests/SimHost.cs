using System.Buffers.Binary;
using System.Globalization;
using XenBackends.Service.Config;
using XenBackends.Service.Hosting;
using XenBackends.Service.Supervisor;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;

namespace XenBackends.Service.Tests;

/// <summary>
/// A simulated Xen host served on sockets (hypervisor + xenstored) exactly as `sim` runs it, plus a
/// little toolstack and an echo frontend, so supervisor tests exec real worker processes against it.
/// </summary>
internal sealed class SimHost : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("xb-svc-").FullName;
    private readonly XenStoreServer _xenstored = new();
    private readonly SimulatedXenHost _host = new();
    private readonly HostServer _hostServer;

    private SimHost()
    {
        _xenstored.Listen(XenStoreSocket, 0);
        _hostServer = new HostServer(_host, HostSocket);
    }

    public string Dir => _dir;
    public string XenStoreSocket => Path.Combine(_dir, "xenstored");
    public string HostSocket => Path.Combine(_dir, "host");
    public HostSpec Spec => new(XenStoreSocket, HostSocket);
    public XenStoreClient Dom0 { get; private set; } = null!;
    public SimulatedXenHost Host => _host;
    public XenStoreServer XenStored => _xenstored;

    public static async Task<SimHost> CreateAsync()
    {
        var h = new SimHost();
        h.Dom0 = await XenStoreClient.OpenSocketAsync(h.XenStoreSocket);
        return h;
    }

    /// <summary>Runs the worker through `dotnet xen-backends.dll worker`, as built next to the tests.</summary>
    public static WorkerCommand Worker => new("dotnet", [Path.Combine(AppContext.BaseDirectory, "xen-backends.dll")]);

    /// <summary><see cref="Worker"/> exec'd inside <paramref name="ns"/> (`ip netns exec`), where a vif worker creates its tap.</summary>
    public static WorkerCommand WorkerIn(NetNamespace ns) => new("ip", ns.Prefix(Worker.FileName, [.. Worker.PrefixArguments]));

    public ServiceConfig Config(params string[] kinds) => new()
    {
        Kinds = kinds.Length == 0 ? [Devices.EchoDevice.KindName] : [.. kinds],
        ControlSocket = Path.Combine(_dir, "control.sock"),
        Metrics = new MetricsConfig { Enabled = false },
        Restart = new RestartConfig { InitialDelayMs = 100, MaxDelayMs = 400, StableAfterMs = 60_000 },
    };

    /// <summary>
    /// What libxl does for a new guest with one echo device: domain, introduction, backend and frontend
    /// directories. Without <paramref name="introduce"/> the nodes come before any introduction, as
    /// from a toolstack that writes devices first (then <see cref="IntroduceDomain"/>).
    /// </summary>
    public async Task<EchoGuest> CreateGuestAsync(ushort domid, string name, bool introduce = true)
    {
        var domain = _host.CreateDomain(domid, pageCount: 16);
        if (introduce)
            _xenstored.IntroduceDomain(domid);
        await Dom0.WriteAsync($"/local/domain/{domid}/name", name);
        var guest = new EchoGuest(this, domain, 0);
        await Dom0.WriteAsync(guest.Backend + "/frontend", guest.Frontend);
        await Dom0.WriteAsync(guest.Backend + "/frontend-id", domid.ToString(CultureInfo.InvariantCulture));
        await Dom0.WriteAsync(guest.Backend + "/online", "1");
        await Dom0.WriteAsync(guest.Backend + "/state", "1");
        await Dom0.WriteAsync(guest.Frontend + "/backend", guest.Backend);
        await Dom0.WriteAsync(guest.Frontend + "/state", "1");
        return guest;
    }

    /// <summary>The toolstack's XS_INTRODUCE: fires @introduceDomain.</summary>
    public void IntroduceDomain(ushort domid) => _xenstored.IntroduceDomain(domid);

    /// <summary>xl destroy: the domain dies (@releaseDomain); its memory goes once the backend let go.</summary>
    public void ReleaseDomain(ushort domid) => _xenstored.ReleaseDomain(domid);

    public async Task<string?> ReadAsync(string path) => await Dom0.TryReadStringAsync(path);

    public async ValueTask DisposeAsync()
    {
        await Dom0.DisposeAsync();
        _hostServer.Dispose();
        _host.Dispose();
        await _xenstored.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>The echo frontend: one granted page and one event channel, published like a ring.</summary>
internal sealed class EchoGuest(SimHost sim, SimulatedDomain domain, uint devid)
{
    private uint _gref;
    private uint _port;
    private uint _frame;

    public ushort Domid => domain.Domid;
    public string Backend => $"/local/domain/0/backend/{Devices.EchoDevice.KindName}/{Domid}/{devid}";
    public string Frontend => $"/local/domain/{Domid}/device/{Devices.EchoDevice.KindName}/{devid}";
    public uint GrantRef => _gref;

    public async Task ConnectAsync()
    {
        _frame = domain.Memory.AllocatePage();
        _gref = domain.Grants.GrantAccess(0, _frame, readOnly: false);
        _port = domain.EventChannels.BindUnboundPort(0);
        await sim.Dom0.WriteAsync(Frontend + "/ring-ref", _gref.ToString(CultureInfo.InvariantCulture));
        await sim.Dom0.WriteAsync(Frontend + "/event-channel", _port.ToString(CultureInfo.InvariantCulture));
        await sim.Dom0.WriteAsync(Frontend + "/state", "3");
        await Eventually.TrueAsync(async () => await sim.ReadAsync(Backend + "/state") == "4", $"backend {Backend} Connected");
        await sim.Dom0.WriteAsync(Frontend + "/state", "4");
    }

    /// <summary>Writes a request number, kicks the backend, and waits (bounded) for it to be echoed back.</summary>
    public async Task EchoAsync(uint request)
    {
        var page = domain.Memory.Page(_frame);
        BinaryPrimitives.WriteUInt32LittleEndian(page, request);
        domain.EventChannels.Notify(_port);
        await Eventually.TrueAsync(() => BinaryPrimitives.ReadUInt32LittleEndian(domain.Memory.Page(_frame)[4..]) == request, $"echo of request {request}");
    }

    /// <summary>True while the backend still has the ring page mapped (Xen's GTF_reading/GTF_writing).</summary>
    public bool PageMappedByBackend =>
        (domain.Grants.ReadEntry(_gref).Flags & (GrantTableFlags.GTF_reading | GrantTableFlags.GTF_writing)) != 0;
}
