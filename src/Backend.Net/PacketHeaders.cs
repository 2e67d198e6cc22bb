using System.Buffers.Binary;

namespace XenBackends.Backend.Net;

/// <summary>Where the L4 header of an Ethernet frame is and what it is, as skb_checksum_setup finds it.</summary>
public readonly record struct L4Location(bool IsIpv6, byte Protocol, int L3Offset, int L4Offset, int L4HeaderLength)
{
    public const byte Tcp = 6;
    public const byte Udp = 17;

    /// <summary>Offset of the checksum field inside the L4 header.</summary>
    public int CsumOffset => Protocol == Tcp ? 16 : 6;
}

/// <summary>
/// Parses untrusted Ethernet frames just far enough to place a partial checksum or a TSO header
/// length: IPv4 (no fragments) or IPv6 (hop-by-hop, routing and destination options skipped), then TCP
/// or UDP. Everything is bounds-checked against the frame: a guest chooses every byte.
/// </summary>
public static class PacketHeaders
{
    private const ushort EtherTypeIpv4 = 0x0800;
    private const ushort EtherTypeIpv6 = 0x86DD;
    private const ushort EtherTypeVlan = 0x8100;
    public const int EthernetHeaderLength = 14;

    public static bool TryLocateL4(ReadOnlySpan<byte> frame, out L4Location location)
    {
        location = default;
        if (frame.Length < EthernetHeaderLength)
            return false;
        int l3 = EthernetHeaderLength;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        if (type == EtherTypeVlan)
        {
            if (frame.Length < l3 + 4)
                return false;
            type = BinaryPrimitives.ReadUInt16BigEndian(frame[16..]);
            l3 += 4;
        }
        return type switch
        {
            EtherTypeIpv4 => TryIpv4(frame, l3, out location),
            EtherTypeIpv6 => TryIpv6(frame, l3, out location),
            _ => false,
        };
    }

    private static bool TryIpv4(ReadOnlySpan<byte> frame, int l3, out L4Location location)
    {
        location = default;
        if (frame.Length < l3 + 20 || frame[l3] >> 4 != 4)
            return false;
        int ihl = (frame[l3] & 0xF) * 4;
        if (ihl < 20 || frame.Length < l3 + ihl)
            return false;
        // A fragment's L4 checksum covers the reassembled datagram: it cannot be completed here.
        ushort fragment = BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 6)..]);
        if ((fragment & 0x3FFF) != 0)
            return false;
        return TryL4(frame, false, frame[l3 + 9], l3, l3 + ihl, out location);
    }

    private static bool TryIpv6(ReadOnlySpan<byte> frame, int l3, out L4Location location)
    {
        location = default;
        if (frame.Length < l3 + 40 || frame[l3] >> 4 != 6)
            return false;
        byte next = frame[l3 + 6];
        int offset = l3 + 40;
        // Bounded: at most a handful of extension headers before giving up (each is >= 8 bytes anyway).
        for (int i = 0; i < 8; i++)
        {
            if (next is 0 or 43 or 60)
            {
                if (frame.Length < offset + 8)
                    return false;
                next = frame[offset];
                offset += (frame[offset + 1] + 1) * 8;
                continue;
            }
            return TryL4(frame, true, next, l3, offset, out location);
        }
        return false;
    }

    private static bool TryL4(ReadOnlySpan<byte> frame, bool ipv6, byte protocol, int l3, int l4, out L4Location location)
    {
        location = default;
        int headerLength;
        if (protocol == L4Location.Tcp)
        {
            if (frame.Length < l4 + 20)
                return false;
            headerLength = (frame[l4 + 12] >> 4) * 4;
            if (headerLength < 20 || frame.Length < l4 + headerLength)
                return false;
        }
        else if (protocol == L4Location.Udp)
        {
            if (frame.Length < l4 + 8)
                return false;
            headerLength = 8;
        }
        else
        {
            return false;
        }
        location = new L4Location(ipv6, protocol, l3, l4, headerLength);
        return true;
    }

    /// <summary>
    /// Writes the pseudo-header sum into the L4 checksum field, as netback does for a GSO frame the
    /// guest sent without NETTXF_csum_blank (the kernel's segmentation expects CHECKSUM_PARTIAL).
    /// </summary>
    public static void WritePseudoHeaderChecksum(Span<byte> frame, in L4Location l4)
    {
        int l4Length = frame.Length - l4.L4Offset;
        ushort sum = l4.IsIpv6
            ? InternetChecksum.PseudoHeader(frame.Slice(l4.L3Offset + 8, 16), frame.Slice(l4.L3Offset + 24, 16), l4.Protocol, l4Length)
            : InternetChecksum.PseudoHeader(frame.Slice(l4.L3Offset + 12, 4), frame.Slice(l4.L3Offset + 16, 4), l4.Protocol, l4Length);
        BinaryPrimitives.WriteUInt16BigEndian(frame[(l4.L4Offset + l4.CsumOffset)..], sum);
    }
}
