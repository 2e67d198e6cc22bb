using System.Globalization;
using XenBackends.Backend.Block;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Block.Bench;

/// <summary>
/// One guest, one vbd and an in-process xenstored, connected the way libxl and blkfront would: the
/// real BlockDevice does its real handshake, so the queue under test is exactly the production one.
/// </summary>
internal sealed class BenchDevice : IAsyncDisposable
{
    private const ushort GuestId = 7;
    private static readonly DevicePath Path = new(0, "vbd", GuestId, 51712);
    private readonly string _directory;
    private readonly SimulatedXenHost _host;
    private readonly XenStoreServer _server;
    private readonly XenStoreListener _listener;
    private readonly XenStoreClient _store;
    private readonly WatchRouter _router;

    private BenchDevice(string directory, SimulatedXenHost host, XenStoreServer server, XenStoreListener listener,
        XenStoreClient store, WatchRouter router, BlockDevice block, BenchFrontend front)
    {
        _directory = directory;
        _host = host;
        _server = server;
        _listener = listener;
        _store = store;
        _router = router;
        Block = block;
        Front = front;
    }

    public BlockDevice Block { get; }
    public BenchFrontend Front { get; }
    public SimulatedDomain Guest => _host.GetDomain(GuestId);

    public static async Task<BenchDevice> ConnectAsync(string parameters, BlockBackendOptions options, Workload workload, bool pollingFrontend)
    {
        string directory = Directory.CreateTempSubdirectory("blockbench-").FullName;
        var host = new SimulatedXenHost();
        int pages = workload.QueueDepth * (workload.Segments + 1) + 64;
        var guest = host.CreateDomain(GuestId, pageCount: pages, grantEntries: pages);
        var server = new XenStoreServer();
        var listener = server.Listen(System.IO.Path.Combine(directory, "xs"), 0);
        var store = await XenStoreClient.OpenSocketAsync(listener.SocketPath);
        var router = new WatchRouter(store);
        var keys = new Dictionary<string, string>
        {
            ["frontend"] = Path.ExpectedFrontend,
            ["frontend-id"] = GuestId.ToString(CultureInfo.InvariantCulture),
            ["params"] = parameters,
            ["mode"] = "w",
            ["device-type"] = "disk",
            ["online"] = "1",
            ["state"] = "1",
        };
        foreach (var (k, v) in keys)
            await store.WriteAsync(Path.Backend + "/" + k, v);
        await store.WriteAsync(Path.ExpectedFrontend + "/state", "1");
        await store.WriteAsync(Path.ExpectedFrontend + "/backend", Path.Backend);
        await store.WriteAsync(Path.ExpectedFrontend + "/backend-id", "0");
        var device = await XenbusDevice.OpenAsync(router, Path);
        var block = new BlockDevice(host.CreateGrantMapper(), () => host.OpenEventChannels(SimulatedXenHost.Dom0), options);
        await block.PrepareAsync(device, CancellationToken.None);
        var front = new BenchFrontend(guest, workload, pollingFrontend);
        await front.WriteKeysAsync(store, Path.ExpectedFrontend);
        await block.ConnectAsync(device, CancellationToken.None);
        return new BenchDevice(directory, host, server, listener, store, router, block, front);
    }

    public async ValueTask DisposeAsync()
    {
        await Block.DisposeAsync();
        await _router.DisposeAsync();
        await _store.DisposeAsync();
        await _listener.DisposeAsync();
        await _server.DisposeAsync();
        _host.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
