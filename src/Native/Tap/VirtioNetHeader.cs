using System.Buffers.Binary;

namespace XenBackends.Native.Tap;

/// <summary>
/// <c>struct virtio_net_hdr</c> (10 bytes, little-endian on x86 as tun uses it without IFF_VNET_LE):
/// how a tap frame says "checksum still to do" and "this is a TSO super-frame".
/// </summary>
public struct VirtioNetHeader
{
    public const int Size = 10;

    /// <summary><c>VIRTIO_NET_HDR_F_NEEDS_CSUM</c>: checksum from <see cref="CsumStart"/> to the end, stored at +<see cref="CsumOffset"/>.</summary>
    public const byte FlagNeedsCsum = 1;
    /// <summary><c>VIRTIO_NET_HDR_F_DATA_VALID</c>: the checksum was already verified.</summary>
    public const byte FlagDataValid = 2;

    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoUdp = 3;
    public const byte GsoTcpV6 = 4;
    public const byte GsoEcn = 0x80;

    public byte Flags;
    public byte GsoType;
    public ushort HdrLen;
    public ushort GsoSize;
    public ushort CsumStart;
    public ushort CsumOffset;

    public readonly void WriteTo(Span<byte> destination)
    {
        destination[0] = Flags;
        destination[1] = GsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], HdrLen);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], GsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], CsumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[8..], CsumOffset);
    }

    public static VirtioNetHeader ReadFrom(ReadOnlySpan<byte> source) => new()
    {
        Flags = source[0],
        GsoType = source[1],
        HdrLen = BinaryPrimitives.ReadUInt16LittleEndian(source[2..]),
        GsoSize = BinaryPrimitives.ReadUInt16LittleEndian(source[4..]),
        CsumStart = BinaryPrimitives.ReadUInt16LittleEndian(source[6..]),
        CsumOffset = BinaryPrimitives.ReadUInt16LittleEndian(source[8..]),
    };
}
