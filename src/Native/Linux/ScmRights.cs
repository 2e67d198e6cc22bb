using System.Net.Sockets;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>
/// Sends and receives file descriptors with a message over a unix socket (SCM_RIGHTS), which is how a
/// worker process is handed a guest's memory, grant table and event fds. Intended for SOCK_SEQPACKET
/// sockets so one send is one receive, fds included. The sockets must be in blocking mode.
/// </summary>
public static unsafe class ScmRights
{
    /// <summary>Enough for any message of the host protocol; larger payloads are rejected, not truncated.</summary>
    public const int MaxFds = 16;

    /// <summary>Two connected SOCK_SEQPACKET unix sockets.</summary>
    public static (Socket, Socket) CreateSocketPair()
    {
        int* fds = stackalloc int[2];
        if (LibC.socketpair(LibC.AF_UNIX, LibC.SOCK_SEQPACKET | LibC.SOCK_CLOEXEC, 0, fds) != 0)
            throw LinuxCallException.FromErrno("socketpair");
        return (new Socket(new SafeSocketHandle(fds[0], ownsHandle: true)),
                new Socket(new SafeSocketHandle(fds[1], ownsHandle: true)));
    }

    public static void Send(Socket socket, ReadOnlySpan<byte> payload, ReadOnlySpan<SafeHandle> fds)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (fds.Length > MaxFds)
            throw new ArgumentException($"at most {MaxFds} fds per message", nameof(fds));
        if (payload.IsEmpty)
            throw new ArgumentException("a message needs at least one byte so the receiver can tell it from end of stream", nameof(payload));
        var refs = new bool[fds.Length];
        try
        {
            int controlLength = fds.IsEmpty ? 0 : LibC.CMSG_SPACE(sizeof(int) * fds.Length);
            byte* control = stackalloc byte[Math.Max(controlLength, 1)];
            new Span<byte>(control, Math.Max(controlLength, 1)).Clear();
            fixed (byte* data = payload)
            {
                var iov = new iovec { iov_base = data, iov_len = payload.Length };
                var msg = new msghdr { msg_iov = &iov, msg_iovlen = 1 };
                if (controlLength > 0)
                {
                    msg.msg_control = control;
                    msg.msg_controllen = (uint)controlLength;
                    cmsghdr* header = LibC.CMSG_FIRSTHDR(&msg);
                    header->cmsg_level = LibC.SOL_SOCKET;
                    header->cmsg_type = LibC.SCM_RIGHTS;
                    header->cmsg_len = (uint)LibC.CMSG_LEN(sizeof(int) * fds.Length);
                    int* slots = (int*)LibC.CMSG_DATA(header);
                    for (int i = 0; i < fds.Length; i++)
                    {
                        fds[i].DangerousAddRef(ref refs[i]);
                        slots[i] = (int)fds[i].DangerousGetHandle();
                    }
                }
                int sock = (int)socket.SafeHandle.DangerousGetHandle();
                while (true)
                {
                    long n = LibC.sendmsg(sock, &msg, LibC.MSG_NOSIGNAL);
                    if (n >= 0)
                    {
                        if (n != payload.Length)
                            throw new IOException($"sendmsg sent {n} of {payload.Length} bytes");
                        return;
                    }
                    if (LibC.errno != LibC.EINTR)
                        throw LinuxCallException.FromErrno("sendmsg");
                }
            }
        }
        finally
        {
            for (int i = 0; i < refs.Length; i++)
                if (refs[i])
                    fds[i].DangerousRelease();
        }
    }

    /// <summary>
    /// Receives one message into <paramref name="buffer"/> and appends its fds (owned by the caller) to
    /// <paramref name="fds"/>. Returns the payload length, 0 when the peer closed the connection. A message
    /// or fd list that did not fit is an error (and any fds that did arrive are closed), never a silent cut.
    /// </summary>
    public static int Receive(Socket socket, Span<byte> buffer, List<SafeFd> fds)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(fds);
        int controlLength = LibC.CMSG_SPACE(sizeof(int) * MaxFds);
        byte* control = stackalloc byte[controlLength];
        fixed (byte* data = buffer)
        {
            var iov = new iovec { iov_base = data, iov_len = buffer.Length };
            var msg = new msghdr { msg_iov = &iov, msg_iovlen = 1, msg_control = control, msg_controllen = (uint)controlLength };
            int sock = (int)socket.SafeHandle.DangerousGetHandle();
            long n;
            while ((n = LibC.recvmsg(sock, &msg, LibC.MSG_CMSG_CLOEXEC)) < 0)
            {
                if (LibC.errno != LibC.EINTR)
                    throw LinuxCallException.FromErrno("recvmsg");
            }
            var received = new List<SafeFd>();
            for (cmsghdr* h = LibC.CMSG_FIRSTHDR(&msg); h != null; h = LibC.CMSG_NXTHDR(&msg, h))
            {
                if (h->cmsg_level != LibC.SOL_SOCKET || h->cmsg_type != LibC.SCM_RIGHTS)
                    continue;
                int count = (int)((uint)h->cmsg_len - (uint)LibC.CMSG_LEN(0)) / sizeof(int);
                int* slots = (int*)LibC.CMSG_DATA(h);
                for (int i = 0; i < count; i++)
                    received.Add(new SafeFd(slots[i]));
            }
            if ((msg.msg_flags & (LibC.MSG_TRUNC | LibC.MSG_CTRUNC)) != 0)
            {
                foreach (var fd in received)
                    fd.Dispose();
                throw new IOException((msg.msg_flags & LibC.MSG_CTRUNC) != 0
                    ? $"a message carried more than {MaxFds} fds"
                    : $"a message was larger than the {buffer.Length}-byte buffer");
            }
            fds.AddRange(received);
            return (int)n;
        }
    }
}
