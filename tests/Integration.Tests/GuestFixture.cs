using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.SimulatedHost.XenStore;

namespace XenBackends.Integration.Tests;

/// <summary>A simulated host with xenstored, the toolstack, one guest and a backend host serving it.</summary>
internal sealed class GuestFixture : IAsyncDisposable
{
    public const ushort Domid = 7;
    private readonly string _dir = Directory.CreateTempSubdirectory("xb-int-").FullName;

    private GuestFixture() { }

    public SimulatedXenHost Host { get; } = new();
    public XenStoreServer XenStore { get; } = new();
    public SimulatedToolstack Toolstack { get; private set; } = null!;
    public SimulatedGuest Guest { get; private set; } = null!;
    public InProcessBackends Backends { get; private set; } = null!;

    public static async Task<GuestFixture> CreateAsync(Backend.Block.BlockBackendOptions? options = null)
    {
        var f = new GuestFixture();
        f.Toolstack = await SimulatedToolstack.StartAsync(f.Host, f.XenStore);
        f.Backends = await InProcessBackends.StartAsync(f.Host, f.Toolstack.Dom0SocketPath, options);
        f.Guest = await f.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "guest") { Pages = 32768, GrantEntries = 32768 });
        return f;
    }

    /// <summary>A sparse raw image of <paramref name="bytes"/> in this fixture's directory.</summary>
    public string CreateImage(long bytes, string name = "disk.img")
    {
        string path = Path.Combine(_dir, name);
        using var f = File.Create(path);
        f.SetLength(bytes);
        return path;
    }

    public async ValueTask DisposeAsync()
    {
        await Backends.DisposeAsync();
        await Toolstack.DisposeAsync();
        await XenStore.DisposeAsync();
        Host.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
