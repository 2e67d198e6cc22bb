using XenBackends.SimulatedHost.XenStore;
using XenBackends.XenStore;

namespace XenBackends.XenStore.Tests;

/// <summary>
/// The daemon the conformance suite talks to: the socket in $XENSTORE_CONFORMANCE_SOCKET (a real
/// xenstored, connected as dom0) or, when unset, an in-process <see cref="XenStoreServer"/>.
/// </summary>
public sealed class XenStoreTarget : IAsyncLifetime
{
    public const string SocketVariable = "XENSTORE_CONFORMANCE_SOCKET";

    private string? _directory;

    public XenStoreServer? Server { get; private set; }
    public string Dom0SocketPath { get; private set; } = "";

    public Task InitializeAsync()
    {
        var external = Environment.GetEnvironmentVariable(SocketVariable);
        if (!string.IsNullOrEmpty(external))
        {
            Dom0SocketPath = external;
            return Task.CompletedTask;
        }
        _directory = Directory.CreateTempSubdirectory("xs-").FullName;
        Server = new XenStoreServer();
        Dom0SocketPath = Server.Listen(Path.Combine(_directory, "dom0"), 0).SocketPath;
        return Task.CompletedTask;
    }

    public Task<XenStoreClient> ConnectAsync(XenStoreClientOptions? options = null) => XenStoreClient.OpenSocketAsync(Dom0SocketPath, options);

    /// <summary>A fresh subtree per test so tests never see each other's nodes, even on a shared real daemon.</summary>
    public static string NewBase() => $"/xs-conformance/{Guid.NewGuid():N}";

    public async Task DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync();
        if (_directory is not null) Directory.Delete(_directory, recursive: true);
    }
}
