using System.Net.Sockets;
using System.Text;

namespace XenBackends.Service.Systemd;

/// <summary>
/// sd_notify(3) without libsystemd: one datagram of "KEY=value" lines to $NOTIFY_SOCKET, a filesystem
/// path or, with a leading '@', an abstract socket. Silent when there is no socket (not under systemd).
/// </summary>
public sealed class SdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endPoint;
    private readonly Lock _lock = new();

    public SdNotifier(string? notifySocket)
    {
        if (string.IsNullOrEmpty(notifySocket)) return;
        // Abstract names are written "@name" in the variable and are "\0name" on the wire.
        string path = notifySocket[0] == '@' ? "\0" + notifySocket[1..] : notifySocket;
        _endPoint = new UnixDomainSocketEndPoint(path);
        // Non-blocking: a unix datagram send blocks once the receiver holds net.unix.max_dgram_qlen
        // unread messages (10 by default), and a manager that stopped reading would then freeze the
        // caller, the supervisor's tick loop that restarts dead workers (the crash-consistency
        // run's harness, which never reads, hung so after a few restarts). A full queue drops this
        // notification instead.
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
    }

    public static SdNotifier FromEnvironment() => new(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"));

    public bool Enabled => _socket is not null;

    /// <summary>Sends one notification; false when not under systemd or the manager could not be reached (never throws: a lost notification must not stop the service).</summary>
    public bool Notify(string state)
    {
        if (_socket is null) return false;
        try
        {
            lock (_lock)
                _socket.SendTo(Encoding.UTF8.GetBytes(state), _endPoint!);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// The keep-alive interval systemd expects: half of $WATCHDOG_USEC, as sd_watchdog_enabled(3)
    /// advises, and only when $WATCHDOG_PID (if set) names this process.
    /// </summary>
    public static TimeSpan? WatchdogInterval(string? watchdogUsec, string? watchdogPid, int ownPid)
    {
        if (!ulong.TryParse(watchdogUsec, out ulong usec) || usec == 0) return null;
        if (!string.IsNullOrEmpty(watchdogPid) && watchdogPid != ownPid.ToString(System.Globalization.CultureInfo.InvariantCulture)) return null;
        return TimeSpan.FromMicroseconds(usec / 2);
    }

    public void Dispose() => _socket?.Dispose();
}
