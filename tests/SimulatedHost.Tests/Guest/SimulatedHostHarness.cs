using XenBackends.SimulatedHost.Toolstack;
using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Tests.Guest;

/// <summary>A simulated host with xenstored and the toolstack, timeouts shortened so a stuck wait fails fast.</summary>
public sealed class SimulatedHostHarness : IAsyncDisposable
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private SimulatedHostHarness(SimulatedXenHost host, XenStoreServer server, SimulatedToolstack toolstack)
    {
        Host = host;
        Server = server;
        Toolstack = toolstack;
    }

    public SimulatedXenHost Host { get; }
    public XenStoreServer Server { get; }
    public SimulatedToolstack Toolstack { get; }
    public DefaultHotplugScripts Hotplug => (DefaultHotplugScripts)Toolstack.HotplugScripts;

    public static async Task<SimulatedHostHarness> StartAsync(TimeSpan? destroyTimeout = null)
    {
        var host = new SimulatedXenHost();
        var server = new XenStoreServer();
        var toolstack = await SimulatedToolstack.StartAsync(host, server, new ToolstackOptions
        {
            InitTimeout = Bound,
            HotplugTimeout = Bound,
            DestroyTimeout = destroyTimeout ?? Bound,
        });
        return new SimulatedHostHarness(host, server, toolstack);
    }

    public Task<XenStoreClient> ConnectDom0Async() => XenStoreClient.OpenSocketAsync(Toolstack.Dom0SocketPath);

    public async ValueTask DisposeAsync()
    {
        await Toolstack.DisposeAsync();
        await Server.DisposeAsync();
        Host.Dispose();
    }
}

internal static class XsDump
{
    /// <summary>Every node under <paramref name="root"/> as relative path → value ("" for the root itself is omitted).</summary>
    public static async Task<SortedDictionary<string, string>> TreeAsync(XenStoreClient xs, string root)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        await WalkAsync(xs, root, "", result);
        return result;
    }

    private static async Task WalkAsync(XenStoreClient xs, string path, string rel, SortedDictionary<string, string> into)
    {
        IReadOnlyList<string> children;
        try
        {
            children = await xs.DirectoryAsync(path);
        }
        catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.ENOENT)
        {
            return;
        }
        foreach (string child in children)
        {
            string childRel = rel.Length == 0 ? child : rel + "/" + child;
            string value = await xs.ReadStringAsync(path + "/" + child);
            var grand = await xs.DirectoryAsync(path + "/" + child);
            if (grand.Count == 0 || value.Length != 0)
                into[childRel] = value;
            await WalkAsync(xs, path + "/" + child, childRel, into);
        }
    }

    public static async Task<string> PermsAsync(XenStoreClient xs, string path) =>
        string.Join(' ', (await xs.GetPermissionsAsync(path)).Select(p => p.ToString()));
}
