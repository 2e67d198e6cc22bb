using XenBackends.Native;
using XenBackends.SimulatedHost;
using XenBackends.XenStore;

namespace XenBackends.Service.Hosting;

/// <summary>
/// A worker's view of the simulated Xen host run by `sim` or a test: grant maps and event channels
/// arrive as fds over the host's socket, xenstore is the simulated xenstored's dom0 socket.
/// </summary>
public sealed class SimulatedHostConnection : IXenHost
{
    private readonly HostClient _client;
    private readonly string _xenStoreSocket;

    private SimulatedHostConnection(HostClient client, string xenStoreSocket)
    {
        _client = client;
        _xenStoreSocket = xenStoreSocket;
    }

    public string Kind => "simulated";

    public static SimulatedHostConnection Connect(string hostSocket, string xenStoreSocket)
    {
        try
        {
            return new SimulatedHostConnection(HostClient.Connect(hostSocket), xenStoreSocket);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException)
        {
            throw new HostUnavailableException($"cannot reach the simulated host at {hostSocket}: {e.Message}", e);
        }
    }

    public IGrantMapper CreateGrantMapper() => _client.CreateGrantMapper();

    public IEventChannels OpenEventChannels() => _client.OpenEventChannels();

    public async Task<XenStoreClient> OpenXenStoreAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await XenStoreClient.OpenSocketAsync(_xenStoreSocket, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new HostUnavailableException($"cannot reach the simulated xenstored at {_xenStoreSocket}: {e.Message}", e);
        }
    }

    public void Dispose() => _client.Dispose();
}
