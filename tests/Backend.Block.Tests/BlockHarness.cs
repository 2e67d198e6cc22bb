using System.Globalization;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// One guest, one vbd, a real image file and an in-process xenstored: what libxl would have set up
/// before the backend runs (libxl_disk.c keys in both directories).
/// </summary>
internal sealed class BlockHarness : IAsyncDisposable
{
    public const ushort GuestId = 7;
    public const uint DevId = 51712; // xvda
    private readonly XenStoreListener _listener;

    private BlockHarness(string directory, string imagePath, SimulatedXenHost host, SimulatedDomain guest, XenStoreServer server,
        XenStoreListener listener, XenStoreClient store, WatchRouter router, XenbusDevice device, BlockDevice block)
    {
        Directory = directory;
        ImagePath = imagePath;
        Host = host;
        Guest = guest;
        Server = server;
        _listener = listener;
        Store = store;
        Router = router;
        Device = device;
        Block = block;
    }

    public string Directory { get; }
    public string ImagePath { get; }
    public SimulatedXenHost Host { get; }
    public SimulatedDomain Guest { get; }
    public XenStoreServer Server { get; }
    public XenStoreClient Store { get; }
    public WatchRouter Router { get; }
    public XenbusDevice Device { get; }
    public BlockDevice Block { get; }
    public TestBlkfront? Front { get; private set; }

    public static DevicePath Path => new(0, "vbd", GuestId, DevId);

    public static async Task<BlockHarness> CreateAsync(long imageBytes, BlockBackendOptions? options = null,
        IReadOnlyDictionary<string, string?>? backendKeys = null, string? imagePath = null, int seed = 1, Action<string>? log = null)
    {
        string directory = System.IO.Directory.CreateTempSubdirectory("blk-").FullName;
        imagePath ??= System.IO.Path.Combine(directory, "disk.img");
        if (!File.Exists(imagePath))
        {
            var bytes = new byte[imageBytes];
            new Random(seed).NextBytes(bytes);
            await File.WriteAllBytesAsync(imagePath, bytes);
        }
        var host = new SimulatedXenHost();
        var guest = host.CreateDomain(GuestId, pageCount: 24576, grantEntries: 24576);
        var server = new XenStoreServer();
        var listener = server.Listen(System.IO.Path.Combine(directory, "xs-dom0"), 0);
        var store = await XenStoreClient.OpenSocketAsync(listener.SocketPath);
        var router = new WatchRouter(store);

        var keys = new Dictionary<string, string?>
        {
            ["frontend"] = Path.ExpectedFrontend,
            ["frontend-id"] = S(GuestId),
            ["params"] = imagePath,
            ["mode"] = "w",
            ["device-type"] = "disk",
            ["online"] = "1",
            ["state"] = "1",
            ["discard-enable"] = "1",
        };
        if (backendKeys is not null)
            foreach (var (k, v) in backendKeys) keys[k] = v;
        foreach (var (k, v) in keys)
            if (v is not null)
                await store.WriteAsync(Path.Backend + "/" + k, v);
        await store.WriteAsync(Path.ExpectedFrontend + "/state", "1");
        await store.WriteAsync(Path.ExpectedFrontend + "/backend", Path.Backend);
        await store.WriteAsync(Path.ExpectedFrontend + "/backend-id", "0");
        var device = await XenbusDevice.OpenAsync(router, Path);
        var block = new BlockDevice(host.CreateGrantMapper(), () => host.OpenEventChannels(SimulatedXenHost.Dom0), options, log);
        return new BlockHarness(directory, imagePath, host, guest, server, listener, store, router, device, block);
    }

    /// <summary>Prepare, then a frontend writes its ring keys, then connect (what the lifecycle does, without its waits).</summary>
    public async Task<TestBlkfront> ConnectAsync(BlkifAbi abi = BlkifAbi.X86_64, int order = 0, int queues = 1)
    {
        await Block.PrepareAsync(Device, CancellationToken.None);
        Front = TestBlkfront.Create(Guest, abi, order, queues);
        await Front.WriteKeysAsync(Store, Path.ExpectedFrontend);
        await Block.ConnectAsync(Device, CancellationToken.None);
        return Front;
    }

    public Task<string?> ReadBackendAsync(string key) => Store.TryReadStringAsync(Path.Backend + "/" + key);

    public byte[] ReadImage() => File.ReadAllBytes(ImagePath);

    private static string S(long v) => v.ToString(CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await Block.DisposeAsync();
        await Router.DisposeAsync();
        await Store.DisposeAsync();
        await _listener.DisposeAsync();
        await Server.DisposeAsync();
        Host.Dispose();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}
