using XenBackends.Service.Config;
using XenBackends.Service.Hosting;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.SimulatedHost.XenStore;

namespace XenBackends.Service.Tests;

/// <summary>
/// The simulated host with the libxl-like toolstack, served on sockets as `sim` serves it, for
/// supervisor tests with the real vbd and vif kinds: the toolstack adds devices and waits for the
/// worker process's InitWait exactly as libxl waits for a backend.
/// </summary>
internal sealed class ToolstackHost : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("xb-svc-ts-").FullName;
    private readonly SimulatedXenHost _host = new();
    private readonly XenStoreServer _xenstored = new();
    private HostServer _hostServer = null!;

    private ToolstackHost() { }

    public string Dir => _dir;

    /// <summary>Requests xenstored has handled, from every client (workers, toolstack, frontends).</summary>
    public long XenStoreRequests => _xenstored.RequestsHandled;
    public SimulatedToolstack Toolstack { get; private set; } = null!;
    public HostSpec Spec => new(Toolstack.Dom0SocketPath, _hostServer.SocketPath);

    public static async Task<ToolstackHost> CreateAsync()
    {
        var h = new ToolstackHost();
        h.Toolstack = await SimulatedToolstack.StartAsync(h._host, h._xenstored, new ToolstackOptions { SocketDirectory = h._dir });
        h._hostServer = new HostServer(h._host, Path.Combine(h._dir, "host"));
        return h;
    }

    public ServiceConfig Config(string kind, int initialRestartDelayMs = 100) => new()
    {
        Kinds = [kind],
        ControlSocket = Path.Combine(_dir, "control.sock"),
        Metrics = new MetricsConfig { Enabled = false },
        Restart = new RestartConfig { InitialDelayMs = initialRestartDelayMs, MaxDelayMs = 4 * initialRestartDelayMs, StableAfterMs = 60_000 },
    };

    public Task<SimulatedGuest> CreateGuestAsync(ushort domid, string name) =>
        Toolstack.CreateDomainAsync(new DomainSpec(domid, name) { Pages = 4096, GrantEntries = 4096 });

    public string CreateImage(long bytes, string name = "disk.img")
    {
        string path = Path.Combine(_dir, name);
        using var file = File.Create(path);
        file.SetLength(bytes);
        return path;
    }

    /// <summary>True when nothing exists at <paramref name="path"/> in xenstore.</summary>
    public async Task<bool> GoneAsync(string path)
    {
        try
        {
            await Toolstack.Dom0.DirectoryAsync(path);
            return false;
        }
        catch (XenStore.XenStoreErrorException e) when (e.ErrnoName == XenStore.XsErrno.ENOENT)
        {
            return true;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Toolstack.DisposeAsync();
        _hostServer.Dispose();
        await _xenstored.DisposeAsync();
        _host.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
