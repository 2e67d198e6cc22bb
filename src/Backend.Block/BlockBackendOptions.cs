using XenBackends.Native.IO;

namespace XenBackends.Backend.Block;

/// <summary>How request data travels between guest pages and the image.</summary>
public enum BlockDataPath
{
    /// <summary>Grant copy into pooled page-aligned buffers, batched per ring drain (QEMU, tapdisk style).</summary>
    GrantCopy,
    /// <summary>Map the guest's pages and do vectored I/O straight into them (no copy; one map per request).</summary>
    GrantMap,
}

/// <summary>Administrator knobs of the block backend; defaults match what Linux blkback advertises.</summary>
public sealed record BlockBackendOptions
{
    /// <summary><c>multi-queue-max-queues</c>: one ring, worker thread and I/O engine per queue.</summary>
    public int MaxQueues { get; init; } = 4;

    /// <summary><c>max-ring-page-order</c> (XENBUS_MAX_RING_GRANT_ORDER is 4: 16 pages, 512 slots).</summary>
    public int MaxRingPageOrder { get; init; } = 4;

    /// <summary><c>feature-max-indirect-segments</c>; at least 256 (1 MiB requests), at most 4096 (8 indirect pages).</summary>
    public int MaxIndirectSegments { get; init; } = 256;

    /// <summary>
    /// Auto also decides how data meets an image kept in memory (tmpfs, ramfs) on the grant-copy path:
    /// when the image has no hole, reads and writes are grant-copied straight between the guest's
    /// pages and a shared mapping of it, one copy and no syscall (Native.IO.ImageMapping says why that
    /// is safe and when it is given up); everything else runs inline. An engine named here always
    /// goes through the file descriptor.
    /// </summary>
    public IoEngineKind IoEngine { get; init; } = IoEngineKind.Auto;

    /// <summary>
    /// Grant copy by measurement (bench/Block.Bench/README.md): on the null image it costs ~0.3-0.7 us
    /// of backend CPU per 4 KiB request against 5-8 us for grant map, whose per-request map and unmap
    /// (mmap and munmap here, TLB shootdowns on real Xen) dominate; on tmpfs grant map is 3-6x slower.
    /// Neither allocates per request. Only a 1 MiB write to the null image, where no byte is ever
    /// touched, favours mapping. Grant copy also keeps guest pages out of the page cache (XSA-229).
    /// </summary>
    public BlockDataPath DataPath { get; init; } = BlockDataPath.GrantCopy;

    /// <summary>
    /// 4 KiB bounce pages per queue (grant-copy path). Bounds a hostile guest's share of dom0 memory;
    /// when all are in use the queue stops consuming (counted as oo_req) until completions free some.
    /// </summary>
    public int BufferPagesPerQueue { get; init; } = 2048;

    /// <summary>
    /// Where each queue keeps its request journal (Rings.Blkif.BlkifJournal), a file per ring named
    /// domid-vbd-devid-qN. Put it on tmpfs, in a directory that outlives the worker process but not
    /// the host (the service uses /run/xen-backends/journal). Null: the journal lives in this
    /// process's memory, so a reconnect in the same process resumes but a restarted process cannot
    /// serve again what its predecessor had taken and not answered.
    /// </summary>
    public string? JournalDirectory { get; init; }

    /// <summary>How long a disconnect waits for in-flight I/O before abandoning it (a dead image must not hang the service).</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The drain when the frontend's directory is already gone (the guest was saved, migrated away or
    /// destroyed): no response can reach it any more, so a dead image must not hold the rings of a
    /// vanished domain for the full <see cref="DrainTimeout"/>. The short grace lets healthy in-flight
    /// writes land before the destination re-issues them against the same image.
    /// </summary>
    public TimeSpan GoneFrontendDrainTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Presents a larger logical sector size than the image reports (e.g. 4096 for a 4Kn disk image
    /// in a file); null uses the image's own. Must be a power of two >= the image's.
    /// </summary>
    public int? SectorSizeOverride { get; init; }

    /// <summary>
    /// The disk's QoS limiter, shared by all its queues; null is unlimited. Stateful: give each device
    /// its own options (a <c>with</c> copy shares the limiter, and so the budget).
    /// </summary>
    public IoRateLimiter? RateLimiter { get; init; }

    /// <summary>
    /// The longest a queue watches its ring for more requests before it sleeps (adaptive, like KVM's
    /// halt polling: the window grows while the guest keeps coming back within it and falls to zero
    /// when it goes quiet). Zero, the default, never spins, as Linux blkback. Polling trades dom0 CPU
    /// for fewer sleeps and wake-ups; on the 2-vCPU bench VM 50 us nearly doubled the IOPS a sleeping
    /// blkfront got, for about 10 % more backend CPU per request (bench/Block.Bench/README.md).
    /// </summary>
    public TimeSpan PollTime { get; init; } = TimeSpan.Zero;

    /// <summary>Replaces each queue's I/O engine (test doubles: a hung image, a filesystem without discard).</summary>
    internal Func<int, IIoEngine>? IoEngineFactory { get; init; }

    internal void Validate()
    {
        if (MaxQueues is < 1 or > 256) throw new ArgumentOutOfRangeException(nameof(MaxQueues));
        if (MaxRingPageOrder is < 0 or > 8) throw new ArgumentOutOfRangeException(nameof(MaxRingPageOrder));
        if (MaxIndirectSegments is < 11 or > 4096) throw new ArgumentOutOfRangeException(nameof(MaxIndirectSegments));
        if (BufferPagesPerQueue < MaxIndirectSegments) throw new ArgumentOutOfRangeException(nameof(BufferPagesPerQueue), "must hold at least one largest request");
        if (PollTime < TimeSpan.Zero || PollTime > TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(nameof(PollTime), "0 to 1 ms");
        if (SectorSizeOverride is { } s && (s < 512 || (s & (s - 1)) != 0)) throw new ArgumentOutOfRangeException(nameof(SectorSizeOverride));
    }
}
