namespace XenBackends.Service.Tests.CrashConsistency;

/// <summary>
/// One comparison of an image read back with what the guest knew. <paramref name="before"/> is taken
/// after the worker died and before the image was read (what was acknowledged or made durable by
/// then is already on the image), <paramref name="after"/> once the read finished (a sector may hold
/// anything issued up to then, since requests in flight at the kill may or may not have landed).
/// </summary>
internal sealed class ImageCheck
{
    public long SectorsChecked;
    /// <summary>Acknowledged writes whose every sector still owed to them was checked (summed over checks).</summary>
    public long AckedWritesChecked;
    /// <summary>Of those, writes an acknowledged flush covered.</summary>
    public long DurableWritesChecked;
    public long DurableSectorsChecked;
    /// <summary>A sector older than the last write an acknowledged flush covered: the contract broken.</summary>
    public long FlushedLosses;
    /// <summary>A sector older than its last acknowledged (not yet flushed) write.</summary>
    public long AckedLosses;
    /// <summary>A sector holding nothing any write put there (torn, misplaced or corrupt).</summary>
    public long Garbage;
    /// <summary>A sector newer than anything issued.</summary>
    public long Phantoms;
    /// <summary>Sectors of writes still in flight at the kill that had already landed.</summary>
    public long InFlightLanded;
    public readonly List<string> Examples = [];

    public void Run(ReadOnlySpan<byte> image, WriteModel.Snapshot before, WriteModel.Snapshot after)
    {
        // A write counts once per check however many sectors it covers; a sector a later write
        // overwrote is owed to that later write, and counted there.
        AckedWritesChecked += before.Acked.Where(v => v > 0).Distinct().LongCount();
        DurableWritesChecked += before.Durable.Where(v => v > 0).Distinct().LongCount();
        for (int s = 0; s < before.Acked.Length; s++)
        {
            var sector = image.Slice(s * SectorStamp.SectorSize, SectorStamp.SectorSize);
            SectorStamp.Kind kind = SectorStamp.Classify(sector, s, out long version);
            long durable = before.Durable[s], acked = before.Acked[s], issued = after.Issued[s];
            SectorsChecked++;
            if (durable > 0) DurableSectorsChecked++;
            if (kind == SectorStamp.Kind.Garbage)
            {
                Garbage++;
                Note($"sector {s}: garbage (durable v{durable}, acked v{acked}, issued v{issued})");
                continue;
            }
            if (version > issued)
            {
                Phantoms++;
                Note($"sector {s}: v{version} was never issued (issued up to v{issued})");
            }
            else if (version < durable)
            {
                FlushedLosses++;
                Note($"sector {s}: holds v{version}, but v{durable} was acknowledged before an acknowledged flush");
            }
            else if (version < acked)
            {
                AckedLosses++;
                Note($"sector {s}: holds v{version}, but v{acked} was acknowledged");
            }
            else if (version > acked)
            {
                InFlightLanded++;
            }
        }
    }

    public bool Clean => FlushedLosses == 0 && AckedLosses == 0 && Garbage == 0 && Phantoms == 0;

    private void Note(string what)
    {
        if (Examples.Count < 10) Examples.Add(what);
    }
}
