using System.Buffers.Binary;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Control;

/// <summary>
/// Hashes a frame for the guest as netif.h asks: the "maximal" enabled type wins (TCP 4-tuple when
/// the frame is unfragmented TCP and the TCP type is on, else the address pair), over the bytes in
/// network order (source address, destination address, source port, destination port).
/// </summary>
public static class RxHash
{
    /// <summary>
    /// The hash of <paramref name="frame"/> and its <c>_XEN_NETIF_CTRL_HASH_TYPE_*</c> bit number,
    /// or false when no enabled type applies (then the guest gets no hash extra).
    /// </summary>
    public static bool TryHash(RxHashSettings settings, ReadOnlySpan<byte> frame, out uint hash, out byte type)
    {
        hash = 0;
        type = 0;
        uint types = settings.Types;
        if (!settings.IsHashing || frame.Length < PacketHeaders.EthernetHeaderLength)
            return false;
        int l3 = PacketHeaders.EthernetHeaderLength;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        if (etherType == 0x8100 && frame.Length >= 18)
        {
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[16..]);
            l3 += 4;
        }
        Span<byte> input = stackalloc byte[Toeplitz.MaxInput];
        bool v4 = etherType == 0x0800, v6 = etherType == 0x86DD;
        if (!v4 && !v6)
            return false;
        uint tcpType = v4 ? NetifCtrlHashType.Ipv4Tcp : NetifCtrlHashType.Ipv6Tcp;
        uint ipType = v4 ? NetifCtrlHashType.Ipv4 : NetifCtrlHashType.Ipv6;
        if ((types & (tcpType | ipType)) == 0)
            return false;
        int addresses = v4 ? 8 : 32;
        int addressOffset = v4 ? l3 + 12 : l3 + 8;
        if (frame.Length < addressOffset + addresses || frame[l3] >> 4 != (v4 ? 4 : 6))
            return false;
        frame.Slice(addressOffset, addresses).CopyTo(input);

        // TryLocateL4 refuses IPv4 fragments, so a fragment falls back to the address hash, as Linux's
        // flow dissector does (FLOW_DIS_IS_FRAGMENT).
        if ((types & tcpType) != 0 && PacketHeaders.TryLocateL4(frame, out L4Location l4) && l4.Protocol == L4Location.Tcp)
        {
            frame.Slice(l4.L4Offset, 4).CopyTo(input[addresses..]);
            hash = settings.Function.Hash(input[..(addresses + 4)]);
            type = (byte)(v4 ? NetifCtrlHashType.Ipv4TcpBit : NetifCtrlHashType.Ipv6TcpBit);
            return true;
        }
        if ((types & ipType) == 0)
            return false;
        hash = settings.Function.Hash(input[..addresses]);
        type = (byte)(v4 ? NetifCtrlHashType.Ipv4Bit : NetifCtrlHashType.Ipv6Bit);
        return true;
    }

    /// <summary>
    /// The guest queue for a frame (xenvif_select_queue with a hash algorithm set): the mapping table
    /// entry at hash mod table size, or hash mod queue count without a table. A frame without a hash
    /// counts as hash 0, as in netback (its skb hash is cleared).
    /// </summary>
    public static int SelectQueue(RxHashSettings settings, bool hashed, uint hash, int numQueues)
    {
        uint h = hashed ? hash : 0;
        uint[] mapping = settings.MappingArray;
        if (mapping.Length == 0)
            return (int)(h % (uint)numQueues);
        uint queue = mapping[h % (uint)mapping.Length];
        // Validated against the queue count at SET_HASH_MAPPING; the check stays as a guard.
        return queue < (uint)numQueues ? (int)queue : 0;
    }
}
