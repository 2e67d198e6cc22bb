using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// The host connection protocol, over a SOCK_SEQPACKET unix socket (one message per request/reply,
/// little-endian). A request is <c>u8 op</c> + arguments; a reply is <c>i32 errno</c> (0 = ok) + results,
/// with fds attached by SCM_RIGHTS:
/// <list type="bullet">
/// <item>OpenDomain(u16 domid) → u32 pageCount, u32 grantEntries; fds: RAM memfd, grant table memfd.</item>
/// <item>AllocUnbound(u16 domid, u16 remoteDomid) → u32 port; fds: inbox, outbox eventfds.</item>
/// <item>BindInterdomain(u16 domid, u16 remoteDomid, u32 remotePort) → u32 port; fds: inbox, outbox.</item>
/// <item>Close(u16 domid, u32 port) → nothing.</item>
/// </list>
/// Ports a connection bound are closed when it disconnects, as closing an evtchn fd does.
/// </summary>
internal static class HostProtocol
{
    public const byte OpenDomain = 1;
    public const byte AllocUnbound = 2;
    public const byte BindInterdomain = 3;
    public const byte Close = 4;
    public const int MaxMessage = 64;

    public static byte[] Request(byte op, ushort domid, ushort other = 0, uint port = 0)
    {
        var m = new byte[9];
        m[0] = op;
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(1), domid);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(3), other);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(5), port);
        return m;
    }

    public static byte[] Reply(int errno, uint a = 0, uint b = 0)
    {
        var m = new byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(m, errno);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(4), a);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), b);
        return m;
    }

    public static void Send(Socket socket, byte[] message, params SafeHandle[] fds) => ScmRights.Send(socket, message, fds);
}
