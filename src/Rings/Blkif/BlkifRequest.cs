namespace XenBackends.Rings.Blkif;

/// <summary>What decoding found wrong with a request; the backend answers accordingly.</summary>
public enum BlkifRequestStatus
{
    Valid = 0,
    /// <summary>A direct read/write/barrier/flush with nr_segments &gt; BLKIF_MAX_SEGMENTS_PER_REQUEST.</summary>
    TooManySegments,
    /// <summary>An indirect request whose nr_segments needs more than BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST pages.</summary>
    TooManyIndirectPages,
    /// <summary>An indirect request whose indirect_op is neither READ nor WRITE (Linux: "Invalid indirect operation").</summary>
    BadIndirectOperation,
    /// <summary>An operation this ABI does not define (or BLKIF_OP_RESERVED_1); only id and operation were read.</summary>
    UnknownOperation,
}

/// <summary>
/// A blkif request in private memory, independent of the ring ABI: whatever the frontend wrote was
/// copied once and can no longer change. Only fields the operation defines are filled; the rest
/// stay zero. Structural problems are in <see cref="Status"/>; semantic checks (segment sector
/// ranges, nr_segments == 0, disk bounds, read-only) are the block backend's.
/// </summary>
public struct BlkifRequest
{
    /// <summary><c>BLKIF_OP_*</c>, as the frontend wrote it (echoed in the response).</summary>
    public byte Operation;
    /// <summary>nr_segments: u8 for direct requests, u16 for indirect ones.</summary>
    public ushort NrSegments;
    public ushort Handle;
    /// <summary>The guest's cookie, echoed in the response; always decoded, even for bad requests.</summary>
    public ulong Id;
    /// <summary>In 512-byte sectors.</summary>
    public ulong SectorNumber;
    /// <summary>Direct requests: the first min(NrSegments, 11) are copied.</summary>
    public BlkifSegmentArray Segments;
    /// <summary>Discard: <c>flag</c> (<see cref="BlkifDiscardFlags"/>).</summary>
    public byte DiscardFlag;
    /// <summary>Discard: number of 512-byte sectors.</summary>
    public ulong NrSectors;
    /// <summary>Indirect: READ or WRITE.</summary>
    public byte IndirectOp;
    /// <summary>Indirect: the first <see cref="NrIndirectPages"/> grefs are copied.</summary>
    public BlkifIndirectGrefArray IndirectGrefs;
    /// <summary>Indirect: pages the segments occupy, capped at BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST.</summary>
    public byte NrIndirectPages;
    public BlkifRequestStatus Status;

    public readonly bool IsValid => Status == BlkifRequestStatus.Valid;

    /// <summary>The <c>BLKIF_RSP_*</c> to answer a request that failed decoding with (Linux blkback's choices).</summary>
    public readonly short RejectionStatus => Status switch
    {
        BlkifRequestStatus.Valid => BlkifRsp.Okay,
        BlkifRequestStatus.UnknownOperation => BlkifRsp.EOpNotSupp,
        _ => BlkifRsp.Error,
    };

    /// <summary>Indirect pages needed for <paramref name="nrSegments"/> segments (INDIRECT_PAGES in Linux blkback).</summary>
    public static int IndirectPagesFor(int nrSegments) =>
        (nrSegments + BlkifLimits.SegmentsPerIndirectPage - 1) / BlkifLimits.SegmentsPerIndirectPage;
}
