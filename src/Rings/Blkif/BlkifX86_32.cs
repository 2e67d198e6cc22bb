using System.Runtime.InteropServices;

namespace XenBackends.Rings.Blkif;

// The x86_32-abi layouts: gcc -m32 of io/blkif.h, u64 aligned to 4 (Linux's packed
// blkif_x86_32_* compat structs say the same).

/// <summary><c>struct blkif_request</c>, x86_32 layout (108 bytes; the ring slot).</summary>
[StructLayout(LayoutKind.Explicit, Size = 108)]
public struct BlkifX86_32Request
{
    [FieldOffset(0)] public byte Operation;
    [FieldOffset(1)] public byte NrSegments;
    [FieldOffset(2)] public ushort Handle;
    [FieldOffset(4)] public ulong Id;
    [FieldOffset(12)] public ulong SectorNumber;
    [FieldOffset(20)] public BlkifSegmentArray Seg;
}

/// <summary><c>struct blkif_request_discard</c>, x86_32 layout (28 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 28)]
public struct BlkifX86_32RequestDiscard
{
    [FieldOffset(0)] public byte Operation;
    [FieldOffset(1)] public byte Flag;
    [FieldOffset(2)] public ushort Handle;
    [FieldOffset(4)] public ulong Id;
    [FieldOffset(12)] public ulong SectorNumber;
    [FieldOffset(20)] public ulong NrSectors;
}

/// <summary><c>struct blkif_request_indirect</c>, x86_32 layout (64 bytes: the header adds a u64 pad on i386).</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct BlkifX86_32RequestIndirect
{
    [FieldOffset(0)] public byte Operation;
    [FieldOffset(1)] public byte IndirectOp;
    [FieldOffset(2)] public ushort NrSegments;
    [FieldOffset(4)] public ulong Id;
    [FieldOffset(12)] public ulong SectorNumber;
    [FieldOffset(20)] public ushort Handle;
    [FieldOffset(24)] public BlkifIndirectGrefArray IndirectGrefs;
    [FieldOffset(56)] public ulong Pad;
}

/// <summary><c>struct blkif_response</c>, x86_32 layout (12 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 12)]
public struct BlkifX86_32Response
{
    [FieldOffset(0)] public ulong Id;
    [FieldOffset(8)] public byte Operation;
    [FieldOffset(10)] public short Status;
}
