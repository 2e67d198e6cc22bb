using System.Buffers.Binary;
using Tmds.Linux;

namespace XenBackends.Backend.Net.Tests.Infra;

/// <summary>An AF_PACKET socket bound to one interface: sees every frame that interface receives, and can send raw frames out of it.</summary>
internal sealed unsafe class PacketSocket : IDisposable
{
    private const ushort EthPAll = 0x0003;
    private const byte PacketOutgoing = 4;
    private readonly int _fd;
    private readonly int _ifindex;

    private PacketSocket(int fd, int ifindex)
    {
        _fd = fd;
        _ifindex = ifindex;
    }

    /// <summary>Opens it in the namespace the calling thread is in.</summary>
    public static PacketSocket Open(string ifname)
    {
        int fd = LibC.socket(LibC.AF_PACKET, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, BinaryPrimitives.ReverseEndianness(EthPAll));
        if (fd < 0)
            throw new InvalidOperationException($"socket(AF_PACKET) errno {LibC.errno}");
        int index = IfIndex(fd, ifname);
        // A test counts every frame; the default receive buffer (~200 KiB) overflowed while the reading
        // thread was starved on a loaded machine and frames the backend did send went missing.
        int bytes = 32 << 20;
        if (LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_RCVBUFFORCE, &bytes, sizeof(int)) != 0)
            throw new InvalidOperationException($"setsockopt(SO_RCVBUFFORCE) errno {LibC.errno}");
        var sll = new sockaddr_ll { sll_family = (ushort)LibC.AF_PACKET, sll_protocol = BinaryPrimitives.ReverseEndianness(EthPAll), sll_ifindex = index };
        if (LibC.bind(fd, (sockaddr*)&sll, (uint)sizeof(sockaddr_ll)) != 0)
            throw new InvalidOperationException($"bind(AF_PACKET) errno {LibC.errno}");
        return new PacketSocket(fd, index);
    }

    private static int IfIndex(int fd, string ifname)
    {
        byte* ifr = stackalloc byte[40];
        new Span<byte>(ifr, 40).Clear();
        System.Text.Encoding.ASCII.GetBytes(ifname, new Span<byte>(ifr, 15));
        if (LibC.ioctl(fd, 0x8933, ifr) != 0)
            throw new InvalidOperationException($"SIOCGIFINDEX {ifname} errno {LibC.errno}");
        return *(int*)(ifr + 16);
    }

    /// <summary>The next frame the interface received (outgoing copies skipped), or null after <paramref name="timeoutMs"/>.</summary>
    public byte[]? Receive(int timeoutMs)
    {
        var buffer = new byte[70000];
        long deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            int left = (int)Math.Max(0, deadline - Environment.TickCount64);
            var pfd = new pollfd { fd = _fd, events = LibC.POLLIN };
            int r = LibC.poll(&pfd, 1, left);
            if (r == 0)
                return null;
            if (r < 0)
            {
                if (LibC.errno == LibC.EINTR) continue;
                throw new InvalidOperationException($"poll errno {LibC.errno}");
            }
            sockaddr_ll from;
            socklen_t fromLen = (uint)sizeof(sockaddr_ll);
            long n;
            fixed (byte* p = buffer)
                n = LibC.recvfrom(_fd, p, buffer.Length, 0, (sockaddr*)&from, &fromLen);
            if (n < 0)
                throw new InvalidOperationException($"recvfrom errno {LibC.errno}");
            if (from.sll_pkttype == PacketOutgoing)
                continue;
            return buffer.AsSpan(0, (int)n).ToArray();
        }
    }

    public void Send(ReadOnlySpan<byte> frame)
    {
        var sll = new sockaddr_ll { sll_family = (ushort)LibC.AF_PACKET, sll_ifindex = _ifindex, sll_halen = 6 };
        long n;
        fixed (byte* p = frame)
            n = LibC.sendto(_fd, p, frame.Length, 0, (sockaddr*)&sll, (uint)sizeof(sockaddr_ll));
        if (n != frame.Length)
            throw new InvalidOperationException($"sendto errno {LibC.errno}");
    }

    public void Dispose() => LibC.close(_fd);
}
