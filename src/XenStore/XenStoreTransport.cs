using System.Net.Sockets;

namespace XenBackends.XenStore;

/// <summary>
/// A byte stream to a xenstore daemon. The socket and /dev/xen/xenbus carry the identical framing, so the
/// client only ever sees a <see cref="Stream"/>; this type decides which one to open.
/// </summary>
public sealed class XenStoreTransport : IAsyncDisposable
{
    public const string DefaultSocketPath = "/run/xenstored/socket";
    public const string DefaultDevicePath = "/dev/xen/xenbus";

    public Stream Stream { get; }
    /// <summary>Where this stream leads, for error messages ("socket /run/xenstored/socket").</summary>
    public string Description { get; }

    public XenStoreTransport(Stream stream, string description)
    {
        Stream = stream ?? throw new ArgumentNullException(nameof(stream));
        Description = description;
    }

    /// <summary>
    /// As libxenstore's xs_open: $XENSTORED_PATH or the default socket when it exists, otherwise the xenbus
    /// device (xenstored running in a stub domain).
    /// </summary>
    public static async Task<XenStoreTransport> OpenDefaultAsync(CancellationToken cancellationToken = default)
    {
        var socketPath = Environment.GetEnvironmentVariable("XENSTORED_PATH");
        if (string.IsNullOrEmpty(socketPath)) socketPath = DefaultSocketPath;
        if (Path.Exists(socketPath) && !Directory.Exists(socketPath))
            return await OpenSocketAsync(socketPath, cancellationToken).ConfigureAwait(false);
        if (Path.Exists(DefaultDevicePath)) return OpenDevice(DefaultDevicePath);
        throw new XenStoreConnectionException(
            $"no xenstore daemon: neither the socket {socketPath} nor the device {DefaultDevicePath} exists (is this a Xen dom0 with xenstored running?)");
    }

    public static async Task<XenStoreTransport> OpenSocketAsync(string path, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new XenStoreConnectionException($"cannot connect to xenstore socket {path}: {e.Message}", e);
        }
        return new XenStoreTransport(new NetworkStream(socket, ownsSocket: true), $"socket {path}");
    }

    /// <summary>The xenbus character device; the kernel relays whole messages to the daemon's ring.</summary>
    public static XenStoreTransport OpenDevice(string path = DefaultDevicePath)
    {
        try
        {
            // bufferSize 1: no FileStream buffering, every frame goes to the driver in the write that carried it.
            var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, bufferSize: 1, FileOptions.Asynchronous);
            return new XenStoreTransport(stream, $"device {path}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new XenStoreConnectionException($"cannot open xenstore device {path}: {e.Message}", e);
        }
    }

    public ValueTask DisposeAsync() => Stream.DisposeAsync();
}
