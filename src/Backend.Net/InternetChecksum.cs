using System.Buffers.Binary;

namespace XenBackends.Backend.Net;

/// <summary>RFC 1071 ones'-complement sums, for pseudo-header fix-ups and software checksum completion.</summary>
public static class InternetChecksum
{
    /// <summary>Adds <paramref name="data"/> (as big-endian 16-bit words, odd tail padded) to a 32-bit running sum.</summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            ulong w = BinaryPrimitives.ReadUInt64BigEndian(data[i..]);
            sum += (w >> 48) + ((w >> 32) & 0xFFFF) + ((w >> 16) & 0xFFFF) + (w & 0xFFFF);
        }
        for (; i + 2 <= data.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length)
            sum += (ulong)data[i] << 8;
        return sum;
    }

    public static ushort Fold(ulong sum)
    {
        while (sum >> 16 != 0)
            sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>
    /// The sum a CHECKSUM_PARTIAL frame carries in its L4 checksum field: the folded, not inverted,
    /// pseudo-header sum (what netfront writes with NETTXF_csum_blank).
    /// </summary>
    public static ushort PseudoHeader(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int l4Length)
    {
        ulong sum = Add(0, source);
        sum = Add(sum, destination);
        sum += protocol;
        sum += (ulong)l4Length;
        return Fold(sum);
    }

    /// <summary>
    /// Finishes a partial checksum in software (skb_checksum_help): sums from <paramref name="start"/>
    /// to the end, including the pseudo-header sum already in the field, and stores the complement.
    /// </summary>
    public static void Complete(Span<byte> frame, int start, int offset, bool udp)
    {
        ushort folded = (ushort)~Fold(Add(0, frame[start..]));
        // UDP sends 0 as "no checksum", so a computed 0 goes out as 0xffff (RFC 768).
        if (udp && folded == 0)
            folded = 0xFFFF;
        BinaryPrimitives.WriteUInt16BigEndian(frame[(start + offset)..], folded);
    }
}
