using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using XenBackends.Native.Linux;

namespace XenBackends.Native.Tap;

/// <summary>
/// A non-blocking rtnetlink socket subscribed to link changes (RTMGRP_LINK), opened in the network
/// namespace the tap's interface lives in now (TUNGETDEVNETNS): the hotplug script may have moved
/// the tap out of ours, and a bridge is only visible from its own namespace. The caller sleeps on
/// <see cref="PollFd"/>, asks for one link's current state with <see cref="RequestLink"/> (the answer
/// arrives on the same socket, as an RTM_NEWLINK like any notification) and reads raw messages with
/// <see cref="Receive"/>; <see cref="LinkMessage"/> parses them.
/// </summary>
public sealed unsafe class LinkNotifications : IDisposable
{
    /// <summary><c>_IO('T', 227)</c>: an fd of the network namespace of the tap's device.</summary>
    private const int TUNGETDEVNETNS = 0x54e3;
    private const int NetlinkRoute = 0;
    private const uint RtmgrpLink = 1;
    private const ushort RtmGetLink = 18;
    private const ushort NlmFRequest = 1;
    private const ushort IflaIfname = 3;

    private readonly SafeFd _fd;
    private uint _seq;

    private LinkNotifications(SafeFd fd) => _fd = fd;

    public int PollFd => _fd.Fd;

    [StructLayout(LayoutKind.Sequential)]
    private struct SockaddrNl
    {
        public ushort Family;
        public ushort Pad;
        public uint Pid;
        public uint Groups;
    }

    /// <summary>Opens the socket in the namespace of <paramref name="queue"/>'s interface; throws if the fd is detached (EBADFD).</summary>
    public static LinkNotifications OpenForTap(TapQueue queue)
    {
        int ns = LibC.ioctl(queue.Handle.Fd, TUNGETDEVNETNS, (void*)0);
        if (ns < 0)
            throw LinuxCallException.FromErrno("ioctl(TUNGETDEVNETNS)");
        using var nsFd = new SafeFd(ns);
        int fd = -1;
        Exception? error = null;
        // A throwaway thread joins that namespace just to create the socket (the socket stays bound to
        // the namespace it was made in); no thread of ours is ever left in the wrong namespace.
        var thread = new Thread(() =>
        {
            try
            {
                if (LibC.unshare(LibC.CLONE_FS) != 0)
                    throw LinuxCallException.FromErrno("unshare(CLONE_FS)");
                if (LibC.setns(nsFd.Fd, LibC.CLONE_NEWNET) != 0)
                    throw LinuxCallException.FromErrno("setns(CLONE_NEWNET)");
                fd = LibC.socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC | LibC.SOCK_NONBLOCK, NetlinkRoute);
                if (fd < 0)
                    throw LinuxCallException.FromErrno("socket(AF_NETLINK)");
            }
            catch (Exception e)
            {
                error = e;
            }
        }) { IsBackground = true, Name = "tap netns" };
        thread.Start();
        thread.Join();
        if (error is not null)
            throw error;
        var handle = new SafeFd(fd);
        var addr = new SockaddrNl { Family = (ushort)LibC.AF_NETLINK, Groups = RtmgrpLink };
        if (LibC.bind(fd, (sockaddr*)&addr, (uint)sizeof(SockaddrNl)) != 0)
        {
            var e = LinuxCallException.FromErrno("bind(AF_NETLINK, RTMGRP_LINK)");
            handle.Dispose();
            throw e;
        }
        return new LinkNotifications(handle);
    }

    /// <summary>RTM_GETLINK by name: the kernel answers with the link's RTM_NEWLINK (or an error message).</summary>
    public void RequestLink(string name)
    {
        TapDevice.ValidateName(name);
        // nlmsghdr (16) + ifinfomsg (16) + rtattr IFLA_IFNAME (4 + name + NUL, padded to 4).
        int attrLength = 4 + name.Length + 1;
        int length = 16 + 16 + ((attrLength + 3) & ~3);
        Span<byte> message = stackalloc byte[64];
        message.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(message[4..], RtmGetLink);
        BinaryPrimitives.WriteUInt16LittleEndian(message[6..], NlmFRequest);
        BinaryPrimitives.WriteUInt32LittleEndian(message[8..], ++_seq);
        message[16] = 0; // AF_UNSPEC
        BinaryPrimitives.WriteUInt16LittleEndian(message[32..], (ushort)attrLength);
        BinaryPrimitives.WriteUInt16LittleEndian(message[34..], IflaIfname);
        Encoding.ASCII.GetBytes(name, message[36..]);
        long n;
        fixed (byte* p = message)
            n = LibC.send(_fd.Fd, p, length, 0);
        if (n != length)
            throw LinuxCallException.FromErrno("send(RTM_GETLINK)");
    }

    /// <summary>One datagram (possibly several messages); 0 when nothing is queued; -1 when the kernel dropped notifications (ENOBUFS: we fell behind, ask for the state again).</summary>
    public int Receive(Span<byte> buffer)
    {
        while (true)
        {
            long n;
            fixed (byte* p = buffer)
                n = LibC.recv(_fd.Fd, p, buffer.Length, 0);
            if (n >= 0)
                return (int)n;
            int errno = LibC.errno;
            if (errno == LibC.EINTR)
                continue;
            if (errno == LibC.EAGAIN)
                return 0;
            if (errno == LibC.ENOBUFS)
                return -1;
            throw new LinuxCallException("recv(AF_NETLINK)", errno);
        }
    }

    public void Dispose() => _fd.Dispose();
}

/// <summary>One RTM_NEWLINK/RTM_DELLINK read from rtnetlink: the interface, its name and its master (0: none).</summary>
public readonly record struct LinkMessage(bool Deleted, int Index, string? Name, int Master)
{
    private const ushort RtmNewLink = 16;
    private const ushort RtmDelLink = 17;
    private const ushort IflaIfname = 3;
    private const ushort IflaMaster = 10;

    /// <summary>Every link message in <paramref name="datagram"/>; anything else (errors, other types, truncation) is skipped.</summary>
    public static List<LinkMessage> Parse(ReadOnlySpan<byte> datagram)
    {
        var list = new List<LinkMessage>();
        while (datagram.Length >= 16)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(datagram);
            if (length < 16 || length > datagram.Length)
                break;
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(datagram[4..]);
            var body = datagram[16..length];
            // ifi_family AF_BRIDGE (7) messages are the bridge's view of its ports: an RTM_DELLINK of that
            // family means "no longer a port", not "deleted". Only the link-level (AF_UNSPEC) ones count.
            if ((type == RtmNewLink || type == RtmDelLink) && body.Length >= 16 && body[0] == 0)
            {
                int index = BinaryPrimitives.ReadInt32LittleEndian(body[4..]);
                string? name = null;
                int master = 0;
                var attrs = body[16..];
                while (attrs.Length >= 4)
                {
                    int attrLength = BinaryPrimitives.ReadUInt16LittleEndian(attrs);
                    ushort attrType = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(attrs[2..]) & 0x3FFF);
                    if (attrLength < 4 || attrLength > attrs.Length)
                        break;
                    var value = attrs[4..attrLength];
                    if (attrType == IflaIfname)
                    {
                        int end = value.IndexOf((byte)0);
                        name = Encoding.ASCII.GetString(end < 0 ? value : value[..end]);
                    }
                    else if (attrType == IflaMaster && value.Length >= 4)
                    {
                        master = BinaryPrimitives.ReadInt32LittleEndian(value);
                    }
                    int step = (attrLength + 3) & ~3;
                    if (step >= attrs.Length)
                        break;
                    attrs = attrs[step..];
                }
                list.Add(new LinkMessage(type == RtmDelLink, index, name, master));
            }
            int next = (length + 3) & ~3;
            if (next >= datagram.Length)
                break;
            datagram = datagram[next..];
        }
        return list;
    }
}
