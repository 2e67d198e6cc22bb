namespace XenBackends.Rings.Blkif;

/// <summary><c>BLKIF_OP_*</c> (io/blkif.h).</summary>
public static class BlkifOp
{
    /// <summary><c>BLKIF_OP_READ</c></summary>
    public const byte Read = 0;
    /// <summary><c>BLKIF_OP_WRITE</c></summary>
    public const byte Write = 1;
    /// <summary><c>BLKIF_OP_WRITE_BARRIER</c></summary>
    public const byte WriteBarrier = 2;
    /// <summary><c>BLKIF_OP_FLUSH_DISKCACHE</c></summary>
    public const byte FlushDiskCache = 3;
    /// <summary><c>BLKIF_OP_RESERVED_1</c> (SLES vendor extension; never valid here).</summary>
    public const byte Reserved1 = 4;
    /// <summary><c>BLKIF_OP_DISCARD</c>: the slot is a <c>blkif_request_discard</c>.</summary>
    public const byte Discard = 5;
    /// <summary><c>BLKIF_OP_INDIRECT</c>: the slot is a <c>blkif_request_indirect</c>.</summary>
    public const byte Indirect = 6;
}

/// <summary><c>BLKIF_RSP_*</c> (io/blkif.h): <c>blkif_response.status</c>.</summary>
public static class BlkifRsp
{
    /// <summary><c>BLKIF_RSP_EOPNOTSUPP</c></summary>
    public const short EOpNotSupp = -2;
    /// <summary><c>BLKIF_RSP_ERROR</c></summary>
    public const short Error = -1;
    /// <summary><c>BLKIF_RSP_OKAY</c></summary>
    public const short Okay = 0;
}

/// <summary>Size limits of io/blkif.h.</summary>
public static class BlkifLimits
{
    /// <summary><c>BLKIF_MAX_SEGMENTS_PER_REQUEST</c></summary>
    public const int MaxSegmentsPerRequest = 11;
    /// <summary><c>BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST</c></summary>
    public const int MaxIndirectPagesPerRequest = 8;
    /// <summary>One 4 KiB indirect page holds this many 8-byte <c>blkif_request_segment</c>s.</summary>
    public const int SegmentsPerIndirectPage = SharedRing.PageSize / 8;
    /// <summary>Sectors are always 512 bytes on the wire, whatever sector-size says.</summary>
    public const int SectorSize = 512;
}

/// <summary>Flags of <c>blkif_request_discard.flag</c>.</summary>
public static class BlkifDiscardFlags
{
    /// <summary><c>BLKIF_DISCARD_SECURE</c></summary>
    public const byte Secure = 1 << 0;
}

/// <summary><c>VDISK_*</c> (io/blkif.h): the xenstore "info" key.</summary>
public static class VDisk
{
    /// <summary><c>VDISK_CDROM</c></summary>
    public const uint CdRom = 0x1;
    /// <summary><c>VDISK_REMOVABLE</c></summary>
    public const uint Removable = 0x2;
    /// <summary><c>VDISK_READONLY</c></summary>
    public const uint ReadOnly = 0x4;
}
