using XenBackends.Native.IO;

namespace XenBackends.Backend.Block;

/// <summary>
/// The image one device serves, as its queues see it: the open file, the geometry advertised to the
/// guest and the policy (read-only, discard). The size is re-read on an online resize while queues
/// run, so it is published with volatile reads and writes; everything else is fixed at prepare.
/// </summary>
/// <remarks>
/// A null image ("null:" in params, for benchmarks only, like Linux null_blk) has no file: reads
/// return zeros, writes, flushes and discards are dropped, and no syscall is made, so what remains
/// is the cost of the backend itself.
/// </remarks>
public sealed class BlockImage : IDisposable
{
    private long _sectors;
    private readonly long _nullBytes;
    private readonly bool _discardConfigured;
    private int _discardRefused, _flushRefused;

    /// <summary>A null image of <paramref name="bytes"/> (a multiple of 512).</summary>
    public BlockImage(long bytes, BlockConfiguration configuration)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        _nullBytes = bytes;
        ReadOnly = !configuration.Writable;
        CdRom = configuration.CdRom;
        _discardConfigured = configuration.DiscardEnabled;
        SectorSize = 512;
        PhysicalSectorSize = 4096;
        RoundSizeToSectors();
    }

    public BlockImage(ImageFile file, BlockConfiguration configuration, int? sectorSizeOverride)
    {
        File = file;
        ReadOnly = !configuration.Writable;
        CdRom = configuration.CdRom;
        _discardConfigured = configuration.DiscardEnabled;
        int logical = file.LogicalSectorSize;
        if (sectorSizeOverride is { } forced)
        {
            if (forced < logical)
                throw new ArgumentOutOfRangeException(nameof(sectorSizeOverride), $"cannot present {forced}-byte sectors on an image with {logical}-byte sectors");
            logical = forced;
        }
        SectorSize = logical;
        PhysicalSectorSize = Math.Max(logical, file.PhysicalSectorSize);
        RoundSizeToSectors();
    }

    /// <summary>The open image; null for a null image.</summary>
    public ImageFile? File { get; }

    public bool IsNull => File is null;

    /// <summary>The fd I/O requests name (-1 for a null image, whose engine never uses it).</summary>
    public int Fd => File?.Fd ?? -1;
    public bool ReadOnly { get; }
    public bool CdRom { get; }
    /// <summary>
    /// Discard is configured and the filesystem has not refused it. Whether a filesystem can punch
    /// holes is only known by trying (probing would mean touching guest data), so the first
    /// EOPNOTSUPP withdraws the feature for the rest of this image's life.
    /// </summary>
    public bool DiscardEnabled => _discardConfigured && Volatile.Read(ref _discardRefused) == 0;

    /// <summary>fdatasync works here; false once the filesystem answered EOPNOTSUPP (some FUSE filesystems do).</summary>
    public bool FlushSupported => Volatile.Read(ref _flushRefused) == 0;

    /// <summary>Records that the filesystem refused discard; true for the first caller only.</summary>
    internal bool RefuseDiscard() => Interlocked.Exchange(ref _discardRefused, 1) == 0;

    /// <summary>Records that the filesystem refused flush; true for the first caller only.</summary>
    internal bool RefuseFlush() => Interlocked.Exchange(ref _flushRefused, 1) == 0;

    /// <summary><c>sector-size</c>: the alignment every request must honour (offsets are still 512-byte units).</summary>
    public int SectorSize { get; }

    public int PhysicalSectorSize { get; }

    /// <summary>
    /// <c>sectors</c>: the image size in 512-byte units (blkif.h after 221f2748e8), rounded down to
    /// a whole logical sector so no request can address a partial one.
    /// </summary>
    public long Sectors => Volatile.Read(ref _sectors);

    /// <summary>Which discard operation this image needs: fallocate on files, ioctls on block devices.</summary>
    public IoOp DiscardOp(bool secure) => File is { IsBlockDevice: true }
        ? (secure ? IoOp.BlockZeroOut : IoOp.BlockDiscard)
        : (secure ? IoOp.ZeroRange : IoOp.PunchHole);

    /// <summary><c>info</c>: the VDISK_* bitmap.</summary>
    public uint Info => (ReadOnly ? Rings.Blkif.VDisk.ReadOnly : 0) | (CdRom ? Rings.Blkif.VDisk.CdRom : 0);

    /// <summary>
    /// The shared mapping the grant-copy path copies through on a memory-resident image, once
    /// <see cref="TryMapIntoMemory"/> made it; null otherwise. Queues check
    /// <see cref="ImageMapping.IsUsable"/>: it can be given up at any time, never taken back.
    /// </summary>
    public ImageMapping? Mapping { get; private set; }

    /// <summary>
    /// Maps a writable-or-not image that lives in memory and has no hole (see <see cref="ImageMapping"/>
    /// for why those conditions make the mapping safe); returns why not otherwise. Call before any
    /// queue starts.
    /// </summary>
    internal string TryMapIntoMemory()
    {
        if (File is null || Mapping is not null)
            return Mapping is null ? "null image" : "mapped";
        Mapping = ImageMapping.TryCreate(File, out string reason);
        return reason;
    }

    /// <summary>Re-reads the image size (online resize); returns true when it changed.</summary>
    public bool Refresh()
    {
        if (File is null)
            return false;
        long before = Sectors;
        File.Refresh();
        // The mapping covers the old size only, and a grown part may be sparse: give it up before a
        // queue can see the new size.
        if (Mapping is not null && File.SizeBytes != Mapping.Length)
            Mapping.Disable();
        RoundSizeToSectors();
        return Sectors != before;
    }

    private void RoundSizeToSectors()
    {
        long perSector = SectorSize / 512;
        long bytes = File?.SizeBytes ?? _nullBytes;
        Volatile.Write(ref _sectors, bytes / 512 / perSector * perSector);
    }

    public void Dispose()
    {
        // Queues that still hold the mapping keep it (and cannot be served by a closed fd anyway);
        // it is unmapped when the last of them lets go.
        Mapping?.Release();
        File?.Dispose();
    }
}
