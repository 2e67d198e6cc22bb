namespace XenBackends.Service.Tests.CrashConsistency;

/// <summary>
/// What the guest knows about every sector of its region: the newest version it issued, the newest
/// one the backend acknowledged, and the newest one an acknowledged flush made durable (a write
/// acknowledged before the flush was issued: blkif.h's FLUSH_DISKCACHE/WRITE_BARRIER contract).
/// The workload never has two writes to one sector in flight, so versions per sector are ordered.
/// </summary>
internal sealed class WriteModel(int sectors)
{
    private readonly object _lock = new();
    private readonly long[] _issued = new long[sectors];
    private readonly long[] _acked = new long[sectors];
    private readonly long[] _durable = new long[sectors];
    private readonly bool[] _busy = new bool[sectors];
    private long _version;

    public int Sectors => sectors;
    public long WritesIssued { get; private set; }
    public long WritesAcked { get; private set; }
    public long WritesMadeDurable { get; private set; }
    public long FlushesAcked { get; private set; }
    /// <summary>Writes acknowledged but not yet covered by an acknowledged flush.</summary>
    private readonly List<(long Version, int First, int Count)> _unflushed = [];

    /// <summary>Claims a free run of sectors for a new write; null if the chosen run is busy.</summary>
    public long? TryBegin(int first, int count)
    {
        lock (_lock)
        {
            for (int s = first; s < first + count; s++)
                if (_busy[s]) return null;
            long version = ++_version;
            for (int s = first; s < first + count; s++)
            {
                _busy[s] = true;
                _issued[s] = version;
            }
            WritesIssued++;
            return version;
        }
    }

    public void Acked(long version, int first, int count)
    {
        lock (_lock)
        {
            for (int s = first; s < first + count; s++)
            {
                _busy[s] = false;
                _acked[s] = version;
            }
            WritesAcked++;
            _unflushed.Add((version, first, count));
        }
    }

    /// <summary>Taken just before a flush is put on the ring: the writes it must make durable.</summary>
    public List<(long Version, int First, int Count)> FlushIssued()
    {
        lock (_lock)
        {
            var covered = new List<(long, int, int)>(_unflushed);
            _unflushed.Clear();
            return covered;
        }
    }

    public void FlushAcked(List<(long Version, int First, int Count)> covered)
    {
        lock (_lock)
        {
            FlushesAcked++;
            WritesMadeDurable += covered.Count;
            foreach (var (version, first, count) in covered)
                for (int s = first; s < first + count; s++)
                    _durable[s] = Math.Max(_durable[s], version);
        }
    }

    public Snapshot Take()
    {
        lock (_lock)
            return new Snapshot((long[])_issued.Clone(), (long[])_acked.Clone(), (long[])_durable.Clone(), WritesMadeDurable);
    }

    public sealed record Snapshot(long[] Issued, long[] Acked, long[] Durable, long WritesMadeDurable);
}
