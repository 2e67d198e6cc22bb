using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace XenBackends.Service.Control;

/// <summary>The `status` command's side of the control socket.</summary>
public static class StatusClient
{
    public static async Task<StatusSnapshot> QueryAsync(string socketPath, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new IOException($"no supervisor answers on {socketPath} ({e.SocketErrorCode}): is xen-backends running (systemctl status xen-backends)?", e);
        }
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(Encoding.ASCII.GetBytes("status\n"), cancellationToken).ConfigureAwait(false);
        socket.Shutdown(SocketShutdown.Send);
        using var reply = new MemoryStream();
        await stream.CopyToAsync(reply, cancellationToken).ConfigureAwait(false);
        try
        {
            return JsonSerializer.Deserialize(reply.ToArray(), StatusJsonContext.Default.StatusSnapshot)
                ?? throw new IOException("the supervisor sent an empty status");
        }
        catch (JsonException e)
        {
            throw new IOException($"the supervisor's status reply is not valid: {e.Message}", e);
        }
    }
}
