namespace XenBackends.Block.Bench;

/// <summary>One fio-like job: block size, pattern, direction and how many requests the guest keeps in flight.</summary>
internal sealed record Workload(string Name, int BlockBytes, bool Random, bool Write, int QueueDepth)
{
    public int Segments => BlockBytes / 4096;

    public static readonly Workload RandRead4K = new("4k-randread", 4096, Random: true, Write: false, QueueDepth: 32);
    public static readonly Workload RandWrite4K = new("4k-randwrite", 4096, Random: true, Write: true, QueueDepth: 32);
    // 8 x 1 MiB is the bounce pool's 2048 pages: a deeper queue would only measure oo_req back-pressure.
    public static readonly Workload SeqRead1M = new("1m-seqread", 1 << 20, Random: false, Write: false, QueueDepth: 8);
    public static readonly Workload SeqWrite1M = new("1m-seqwrite", 1 << 20, Random: false, Write: true, QueueDepth: 8);

    // 16 segments: more than a request's 11, so blkfront sends it indirect with one indirect page; at
    // QD 32 a drain holds many small indirect requests, which is where copying their indirect pages
    // once per drain instead of once per request could show.
    public static readonly Workload RandRead64K = new("64k-randread", 64 << 10, Random: true, Write: false, QueueDepth: 32);

    public static IReadOnlyList<Workload> All { get; } = [RandRead4K, RandWrite4K, SeqRead1M, SeqWrite1M, RandRead64K];
}

/// <summary>
/// The offsets a job visits, shared by the backend run and the bare copy loop so both touch the same
/// places in the same order (xorshift64: cheap, allocation-free, reproducible).
/// </summary>
internal struct OffsetSequence(Workload workload, long imageBytes)
{
    private ulong _state = 0x9E3779B97F4A7C15;
    private long _next;

    public long Next()
    {
        long blocks = imageBytes / workload.BlockBytes;
        if (workload.Random)
        {
            _state ^= _state << 13;
            _state ^= _state >> 7;
            _state ^= _state << 17;
            return (long)(_state % (ulong)blocks) * workload.BlockBytes;
        }
        long offset = _next;
        _next = (_next + 1) % blocks;
        return offset * workload.BlockBytes;
    }
}
