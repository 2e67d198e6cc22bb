using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using XenBackends.Service.Cli;
using XenBackends.Service.Config;
using XenBackends.Service.Hosting;
using XenBackends.Service.Supervisor;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.SimulatedHost.XenStore;

namespace XenBackends.Service.Sim;

/// <summary>
/// "dom0 without Xen" for the demo: the simulated hypervisor and xenstored on sockets in a private
/// temp directory, the toolstack, and the service started through <see cref="ServeCommand.Build"/> —
/// the same supervisor that `serve` runs, exec'ing this executable as one worker process per guest.
/// </summary>
internal sealed class SimMachine : IAsyncDisposable
{
    private readonly SimulatedXenHost _host = new();
    private readonly XenStoreServer _xenstored = new();
    private HostServer? _hostServer;
    private IHost? _service;

    private SimMachine(string dir) => Dir = dir;

    public string Dir { get; }
    public SimulatedToolstack Toolstack { get; private set; } = null!;
    public ServiceConfig Config { get; private set; } = null!;

    public static async Task<SimMachine> StartAsync(ILoggerProvider log, CancellationToken cancellationToken)
    {
        var machine = new SimMachine(CreatePrivateDirectory());
        try
        {
            machine.Toolstack = await SimulatedToolstack.StartAsync(machine._host, machine._xenstored,
                new ToolstackOptions { SocketDirectory = machine.Dir, HotplugScripts = new SimHotplugScripts() }, cancellationToken).ConfigureAwait(false);
            machine._hostServer = new HostServer(machine._host, Path.Combine(machine.Dir, "host.sock"));
            machine.Config = new ServiceConfig
            {
                Kinds = ["vbd", "vif"],
                ControlSocket = Path.Combine(machine.Dir, "control.sock"),
                Metrics = new MetricsConfig { Enabled = false },
            };
            var spec = new HostSpec(machine.Toolstack.Dom0SocketPath, machine._hostServer.SocketPath);
            machine._service = ServeCommand.Build(machine.Config, spec, WorkerCommand.ForThisProcess(), logging => logging.AddProvider(log));
            await machine._service.StartAsync(cancellationToken).ConfigureAwait(false);
            return machine;
        }
        catch
        {
            await machine.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// In /dev/shm when it is there: the image then lives in memory, so the demo measures the backend
    /// rather than the disk, leaves the disk to others sharing the machine, and removing a gigabyte of
    /// scattered writes is instant (on ext4 with discard it took tens of seconds under load).
    /// </summary>
    private static string CreatePrivateDirectory()
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        try
        {
            return Directory.CreateDirectory(Path.Combine(root, "xen-backends-sim-" + Path.GetRandomFileName()), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute).FullName;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Directory.CreateTempSubdirectory("xen-backends-sim-").FullName;
        }
    }

    /// <summary>A sparse raw image: only what the guest writes takes space.</summary>
    public string CreateImage(string name, long bytes)
    {
        string path = Path.Combine(Dir, name);
        using var file = File.Create(path);
        file.SetLength(bytes);
        return path;
    }

    /// <summary>Service first (its workers release every mapping), then the host it used, then the directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_service is not null)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _service.StopAsync(timeout.Token).ConfigureAwait(false);
            _service.Dispose();
        }
        if (Toolstack is not null) await Toolstack.DisposeAsync().ConfigureAwait(false);
        _hostServer?.Dispose();
        await _xenstored.DisposeAsync().ConfigureAwait(false);
        _host.Dispose();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
