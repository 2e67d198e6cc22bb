using System.Buffers.Binary;

namespace XenBackends.Net.Bench;

/// <summary>The frames the benchmark floods: an IPv4/UDP frame of a given size, or a 64 KiB TCP super-frame.</summary>
internal static class Frames
{
    public static readonly byte[] GuestMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x09];
    public static readonly byte[] TapMac = [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

    /// <summary>Guest-TX frames go to a MAC nobody in the namespace has: the stack drops them at once (PACKET_OTHERHOST), so a TX run does no RX work.</summary>
    public static readonly byte[] ElsewhereMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x77];

    /// <summary>An IPv4/UDP frame; <paramref name="sourcePort"/> tells flows apart (multi-queue rows).</summary>
    public static byte[] Udp(int length, byte[] dst, byte[] src, ushort sourcePort = 4000)
    {
        var f = Ip(length, dst, src, 17);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(34), sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), 9);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(38), (ushort)(length - 34));
        return f;
    }

    /// <summary>A TCP frame of <paramref name="length"/> bytes whose checksum field holds the pseudo-header sum (csum_blank / NEEDS_CSUM).</summary>
    public static byte[] Tcp(int length, byte[] dst, byte[] src)
    {
        var f = Ip(length, dst, src, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(34), 4000);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), 5001);
        f[46] = 5 << 4;
        f[47] = 0x10;
        return f;
    }

    private static byte[] Ip(int length, byte[] dst, byte[] src, byte protocol)
    {
        var f = new byte[length];
        dst.CopyTo(f, 0);
        src.CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0800);
        f[14] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)Math.Min(65535, length - 14));
        f[22] = 64;
        f[23] = protocol;
        // From a neighbour on the tap's subnet to the guest: forwarded back out of the same tap.
        byte[] s = [10, 203, 1, 3], d = [10, 203, 1, 2];
        s.CopyTo(f, 26);
        d.CopyTo(f, 30);
        for (int i = 54; i < length; i++)
            f[i] = (byte)i;
        // A valid header checksum: the kernel forwards these frames (ip_rcv checks it).
        uint sum = 0;
        for (int i = 14; i < 34; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(i));
        while (sum > 0xFFFF)
            sum = (sum & 0xFFFF) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(24), (ushort)~sum);
        return f;
    }
}
