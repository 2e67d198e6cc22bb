using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace XenBackends.Rings.Blkif;

/// <summary><c>struct blkif_request_segment</c>: the same 8 bytes in every ABI.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct BlkifRequestSegment
{
    [FieldOffset(0)] public uint Gref;
    /// <summary>First 512-byte sector in the page (inclusive).</summary>
    [FieldOffset(4)] public byte FirstSect;
    /// <summary>Last 512-byte sector in the page (inclusive).</summary>
    [FieldOffset(5)] public byte LastSect;
}

/// <summary><c>seg[BLKIF_MAX_SEGMENTS_PER_REQUEST]</c>.</summary>
[InlineArray(BlkifLimits.MaxSegmentsPerRequest)]
public struct BlkifSegmentArray
{
    private BlkifRequestSegment _element;
}

/// <summary><c>indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST]</c>.</summary>
[InlineArray(BlkifLimits.MaxIndirectPagesPerRequest)]
public struct BlkifIndirectGrefArray
{
    private uint _element;
}
