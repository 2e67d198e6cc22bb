using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace XenBackends.Rings.Netif;

// io/netif.h layouts: only u8/u16/u32 fields, so x86_64, x86_32 and arm agree.

/// <summary><c>struct netif_tx_request</c> (12 bytes; the tx slot).</summary>
[StructLayout(LayoutKind.Explicit, Size = 12)]
public struct NetifTxRequest
{
    [FieldOffset(0)] public uint Gref;
    [FieldOffset(4)] public ushort Offset;
    /// <summary><see cref="NetTxFlags"/>.</summary>
    [FieldOffset(6)] public ushort Flags;
    [FieldOffset(8)] public ushort Id;
    /// <summary>First slot: the whole packet's size; later slots: this fragment's.</summary>
    [FieldOffset(10)] public ushort Size;
}

/// <summary><c>struct netif_tx_response</c> (4 bytes, in a 12-byte slot).</summary>
[StructLayout(LayoutKind.Explicit, Size = 4)]
public struct NetifTxResponse : IRingMessage
{
    [FieldOffset(0)] public ushort Id;
    /// <summary><see cref="NetifRsp"/>.</summary>
    [FieldOffset(2)] public short Status;

    public readonly void WriteTo(ResponseSlot slot)
    {
        slot.WriteUInt16(0, Id);
        slot.WriteInt16(2, Status);
    }
}

/// <summary><c>struct netif_rx_request</c> (8 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct NetifRxRequest
{
    [FieldOffset(0)] public ushort Id;
    [FieldOffset(2)] public ushort Pad;
    [FieldOffset(4)] public uint Gref;
}

/// <summary><c>struct netif_rx_response</c> (8 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct NetifRxResponse : IRingMessage
{
    [FieldOffset(0)] public ushort Id;
    [FieldOffset(2)] public ushort Offset;
    /// <summary><see cref="NetRxFlags"/>.</summary>
    [FieldOffset(4)] public ushort Flags;
    /// <summary>&gt; 0: bytes in this slot; &lt; 0: <see cref="NetifRsp"/>.</summary>
    [FieldOffset(6)] public short Status;

    public readonly void WriteTo(ResponseSlot slot)
    {
        slot.WriteUInt16(0, Id);
        slot.WriteUInt16(2, Offset);
        slot.WriteUInt16(4, Flags);
        slot.WriteInt16(6, Status);
    }
}

/// <summary>
/// <c>struct netif_extra_info</c> (8 bytes): a tx request slot or an rx response slot holding
/// extra data for the packet. <c>u</c> is a union; the GSO, MCAST and HASH members below overlap
/// at offset 2 and <see cref="Type"/> says which one is meant.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct NetifExtraInfo : IRingMessage
{
    /// <summary><see cref="NetifExtraType"/>.</summary>
    [FieldOffset(0)] public byte Type;
    /// <summary><see cref="NetifExtraFlags"/>.</summary>
    [FieldOffset(1)] public byte Flags;

    /// <summary><c>u.gso.size</c>: the MSS.</summary>
    [FieldOffset(2)] public ushort GsoSize;
    /// <summary><c>u.gso.type</c>: <see cref="NetifGsoType"/>.</summary>
    [FieldOffset(4)] public byte GsoType;
    /// <summary><c>u.gso.pad</c></summary>
    [FieldOffset(5)] public byte GsoPad;
    /// <summary><c>u.gso.features</c> (no bits defined).</summary>
    [FieldOffset(6)] public ushort GsoFeatures;

    /// <summary><c>u.mcast.addr</c></summary>
    [FieldOffset(2)] public MacAddress McastAddr;

    /// <summary><c>u.hash.type</c>: an <c>_XEN_NETIF_CTRL_HASH_TYPE_*</c> bit number.</summary>
    [FieldOffset(2)] public byte HashType;
    /// <summary><c>u.hash.algorithm</c>: <see cref="NetifCtrlHashAlgorithm"/>.</summary>
    [FieldOffset(3)] public byte HashAlgorithm;
    /// <summary><c>u.hash.value</c>: four bytes, little-endian.</summary>
    [FieldOffset(4)] public uint HashValue;

    /// <summary><c>u.pad[3]</c>: the whole union as three u16.</summary>
    [FieldOffset(2)] public ushort Pad0;
    [FieldOffset(4)] public ushort Pad1;
    [FieldOffset(6)] public ushort Pad2;

    /// <summary>Writes type, flags and the union as <c>u.pad[3]</c>, which covers every byte: no padding can leak.</summary>
    public readonly void WriteTo(ResponseSlot slot)
    {
        slot.WriteByte(0, Type);
        slot.WriteByte(1, Flags);
        slot.WriteUInt16(2, Pad0);
        slot.WriteUInt16(4, Pad1);
        slot.WriteUInt16(6, Pad2);
    }
}

/// <summary>Six address bytes (<c>u.mcast.addr</c>).</summary>
[InlineArray(6)]
public struct MacAddress
{
    private byte _element;
}

/// <summary><c>data[3]</c> of a control request.</summary>
[InlineArray(3)]
public struct NetifCtrlRequestData
{
    private uint _element;
}

/// <summary><c>struct xen_netif_ctrl_request</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct XenNetifCtrlRequest
{
    [FieldOffset(0)] public ushort Id;
    /// <summary><see cref="NetifCtrlType"/>.</summary>
    [FieldOffset(2)] public ushort Type;
    [FieldOffset(4)] public NetifCtrlRequestData Data;
}

/// <summary><c>struct xen_netif_ctrl_response</c> (12 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 12)]
public struct XenNetifCtrlResponse : IRingMessage
{
    [FieldOffset(0)] public ushort Id;
    [FieldOffset(2)] public ushort Type;
    /// <summary><see cref="NetifCtrlStatus"/>.</summary>
    [FieldOffset(4)] public uint Status;
    [FieldOffset(8)] public uint Data;

    public readonly void WriteTo(ResponseSlot slot)
    {
        slot.WriteUInt16(0, Id);
        slot.WriteUInt16(2, Type);
        slot.WriteUInt32(4, Status);
        slot.WriteUInt32(8, Data);
    }
}

/// <summary><c>struct xen_netif_gref</c> (8 bytes): an entry of a gref-mapping table page.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct XenNetifGref
{
    [FieldOffset(0)] public uint Ref;
    /// <summary><see cref="NetifCtrlGrefFlags"/>.</summary>
    [FieldOffset(4)] public ushort Flags;
    [FieldOffset(6)] public ushort Status;
}

/// <summary>Slot layouts of the three netif rings.</summary>
public static class NetifRings
{
    /// <summary><c>netif_tx</c>: 12-byte slots, 256 per page.</summary>
    public static RingSlotLayout Tx => RingSlotLayout.Of<NetifTxRequest, NetifTxResponse>();

    /// <summary><c>netif_rx</c>: 8-byte slots, 256 per page.</summary>
    public static RingSlotLayout Rx => RingSlotLayout.Of<NetifRxRequest, NetifRxResponse>();

    /// <summary><c>xen_netif_ctrl</c>: 16-byte slots.</summary>
    public static RingSlotLayout Ctrl => RingSlotLayout.Of<XenNetifCtrlRequest, XenNetifCtrlResponse>();
}
