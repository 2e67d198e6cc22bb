using System.Buffers.Binary;

namespace XenBackends.Backend.Net.Tests.Infra;

/// <summary>Builds and checks the Ethernet/IPv4/IPv6/UDP/TCP frames the tests send.</summary>
internal static class Frames
{
    public static readonly byte[] TapMac = [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    public static readonly byte[] GuestIp = [10, 200, 1, 2];
    public static readonly byte[] HostIp = [10, 200, 1, 1];
    public static readonly byte[] FarIp = [10, 200, 2, 2];

    public enum Csum { Full, PseudoOnly }

    public static byte[] Raw(int length, byte[] dst, byte[] src, ushort etherType = 0x88B5, byte seed = 1)
    {
        var f = new byte[length];
        dst.CopyTo(f, 0);
        src.CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), etherType);
        for (int i = 14; i < length; i++)
            f[i] = (byte)(i * 7 + seed);
        return f;
    }

    public static byte[] Payload(int length, byte seed = 3)
    {
        var p = new byte[length];
        for (int i = 0; i < length; i++)
            p[i] = (byte)(i * 13 + seed);
        return p;
    }

    public static byte[] Udp4(byte[] dstMac, byte[] srcMac, byte[] srcIp, byte[] dstIp, ushort sport, ushort dport, byte[] payload, Csum csum)
    {
        var f = Ipv4(dstMac, srcMac, srcIp, dstIp, 17, 8 + payload.Length);
        var l4 = f.AsSpan(34);
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(l4[4..], (ushort)(8 + payload.Length));
        payload.CopyTo(l4[8..]);
        SetL4Checksum(f, 34, 6, csum);
        return f;
    }

    public static byte[] Tcp4(byte[] dstMac, byte[] srcMac, byte[] srcIp, byte[] dstIp, ushort sport, ushort dport, uint seq, byte[] payload, Csum csum)
    {
        var f = Ipv4(dstMac, srcMac, srcIp, dstIp, 6, 20 + payload.Length);
        var l4 = f.AsSpan(34);
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4[4..], seq);
        l4[12] = 5 << 4;
        l4[13] = 0x18; // PSH|ACK
        BinaryPrimitives.WriteUInt16BigEndian(l4[14..], 65535);
        payload.CopyTo(l4[20..]);
        SetL4Checksum(f, 34, 16, csum);
        return f;
    }

    private static byte[] Ipv4(byte[] dstMac, byte[] srcMac, byte[] srcIp, byte[] dstIp, byte proto, int l4Length)
    {
        var f = new byte[34 + l4Length];
        dstMac.CopyTo(f, 0);
        srcMac.CopyTo(f, 6);
        f[12] = 0x08;
        var ip = f.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + l4Length));
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000); // DF
        ip[8] = 64;
        ip[9] = proto;
        srcIp.CopyTo(ip[12..]);
        dstIp.CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)~InternetChecksum.Fold(InternetChecksum.Add(0, ip[..20])));
        return f;
    }

    private static void SetL4Checksum(byte[] f, int l4, int offset, Csum csum)
    {
        int len = f.Length - l4;
        ushort pseudo = InternetChecksum.PseudoHeader(f.AsSpan(26, 4), f.AsSpan(30, 4), f[23], len);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l4 + offset), pseudo);
        if (csum == Csum.Full)
            InternetChecksum.Complete(f, l4, offset, udp: offset == 6);
    }

    /// <summary>True when the IPv4 header checksum and the TCP/UDP checksum (with pseudo-header) are both right.</summary>
    public static bool Ipv4ChecksumsValid(byte[] f)
    {
        int ihl = (f[14] & 0xF) * 4;
        if (InternetChecksum.Fold(InternetChecksum.Add(0, f.AsSpan(14, ihl))) != 0xFFFF)
            return false;
        int l4 = 14 + ihl;
        int totalLength = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));
        int len = totalLength - ihl;
        ulong sum = InternetChecksum.Add(0, f.AsSpan(26, 8));
        sum += f[23];
        sum += (ulong)len;
        sum = InternetChecksum.Add(sum, f.AsSpan(l4, len));
        return InternetChecksum.Fold(sum) == 0xFFFF;
    }
}
