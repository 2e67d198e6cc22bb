using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;

namespace XenBackends.Xenbus.Tests;

/// <summary>
/// An in-process xenstored with a dom0 connection (the backend's) and a guest connection, and one
/// vbd laid out the way libxl lays it out, so lifecycle tests drive real watches and permissions.
/// </summary>
internal sealed class XenstoreFixture : IAsyncDisposable
{
    public const uint GuestId = 5;
    public static readonly DevicePath Device = new(0, "vbd", GuestId, 51712);

    private readonly string _dir = Directory.CreateTempSubdirectory("xb-xs-").FullName;
    private readonly XenStoreServer _server = new();

    private XenstoreFixture() { }

    public XenStoreClient Dom0 { get; private set; } = null!;
    public XenStoreClient Guest { get; private set; } = null!;
    public WatchRouter Watches { get; private set; } = null!;

    public string Backend => Device.Backend;
    public string Frontend => Device.ExpectedFrontend;

    public static async Task<XenstoreFixture> CreateAsync()
    {
        var f = new XenstoreFixture();
        f._server.Listen(Path.Combine(f._dir, "dom0"), 0);
        f._server.Listen(Path.Combine(f._dir, "guest"), GuestId);
        f._server.IntroduceDomain(GuestId);
        f.Dom0 = await XenStoreClient.OpenSocketAsync(Path.Combine(f._dir, "dom0"));
        f.Guest = await XenStoreClient.OpenSocketAsync(Path.Combine(f._dir, "guest"));
        f.Watches = new WatchRouter(f.Dom0);
        await f.CreateDeviceAsync();
        return f;
    }

    private async Task CreateDeviceAsync()
    {
        await Dom0.WriteAsync(Backend + "/frontend", Frontend);
        await Dom0.WriteAsync(Backend + "/frontend-id", GuestId.ToString());
        await Dom0.WriteAsync(Backend + "/online", "1");
        await Dom0.WriteAsync(Backend + "/state", "1");
        await Dom0.SetPermissionsAsync(Backend, new[] { new XsPermission(0, XsAccess.None), new XsPermission(GuestId, XsAccess.Read) });
        await Dom0.WriteAsync(Frontend + "/backend", Backend);
        await Dom0.WriteAsync(Frontend + "/state", "1");
        // As libxl: the guest owns its frontend directory, the backend domain may read it.
        foreach (var node in new[] { Frontend, Frontend + "/state", Frontend + "/backend" })
            await Dom0.SetPermissionsAsync(node, new[] { new XsPermission(GuestId, XsAccess.None), new XsPermission(0, XsAccess.Read) });
    }

    public Task SetFrontendStateAsync(XenbusState state) => Guest.WriteAsync(Frontend + "/state", ((int)state).ToString());

    public async Task<XenbusState?> BackendStateAsync()
    {
        string? s = await Dom0.TryReadStringAsync(Backend + "/state");
        return s is null ? null : XenbusStates.Parse(s);
    }

    /// <summary>Waits (bounded) until the backend's state node reads <paramref name="expected"/>.</summary>
    public async Task WaitBackendStateAsync(XenbusState expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        XenbusState? seen = null;
        while (DateTime.UtcNow < deadline)
        {
            seen = await BackendStateAsync();
            if (seen == expected) return;
            await Task.Delay(5);
        }
        Assert.Fail($"backend state stayed {seen?.ToString() ?? "absent"}, expected {expected}");
    }

    public async ValueTask DisposeAsync()
    {
        await Watches.DisposeAsync();
        await Dom0.DisposeAsync();
        await Guest.DisposeAsync();
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}
