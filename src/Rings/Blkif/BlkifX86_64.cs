using System.Runtime.InteropServices;

namespace XenBackends.Rings.Blkif;

// The x86_64-abi (and arm-abi) layouts: gcc -m64 of io/blkif.h, u64 aligned to 8.

/// <summary><c>struct blkif_request</c>, x86_64 layout (112 bytes; the ring slot).</summary>
[StructLayout(LayoutKind.Explicit, Size = 112)]
public struct BlkifX86_64Request
{
    [FieldOffset(0)] public byte Operation;
    [FieldOffset(1)] public byte NrSegments;
    [FieldOffset(2)] public ushort Handle;
    [FieldOffset(8)] public ulong Id;
    [FieldOffset(16)] public ulong SectorNumber;
    [FieldOffset(24)] public BlkifSegmentArray Seg;
}

/// <summary><c>struct blkif_request_discard</c>, x86_64 layout (32 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct BlkifX86_64RequestDiscard
{
    [FieldOffset(0)] public byte Operation;
    [FieldOffset(1)] public byte Flag;
    [FieldOffset(2)] public ushort Handle;
    [FieldOffset(8)] public ulong Id;
    [FieldOffset(16)] public ulong SectorNumber;
    [FieldOffset(24)] public ulong NrSectors;
}

/// <summary><c>struct blkif_request_indirect</c>, x86_64 layout (64 bytes, tail padded).</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct BlkifX86_64RequestIndirect
{
    [FieldOffset(0)] public byte Operation;
    [FieldOffset(1)] public byte IndirectOp;
    /// <summary>u16 here, unlike the direct request's u8.</summary>
    [FieldOffset(2)] public ushort NrSegments;
    [FieldOffset(8)] public ulong Id;
    [FieldOffset(16)] public ulong SectorNumber;
    [FieldOffset(24)] public ushort Handle;
    [FieldOffset(28)] public BlkifIndirectGrefArray IndirectGrefs;
}

/// <summary><c>struct blkif_response</c>, x86_64 layout (16 bytes, 4 of them tail padding).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct BlkifX86_64Response
{
    [FieldOffset(0)] public ulong Id;
    [FieldOffset(8)] public byte Operation;
    [FieldOffset(10)] public short Status;
}
