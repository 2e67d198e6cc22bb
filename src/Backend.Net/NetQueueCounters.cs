namespace XenBackends.Backend.Net;

/// <summary>
/// Per-queue statistics. Written only by the queue's own thread (plain stores of aligned 64-bit
/// values, so readers never see torn numbers); read from anywhere through <see cref="Snapshot"/>.
/// "Tx" is guest-to-backend, as in netif.h.
/// </summary>
public sealed class NetQueueCounters
{
    internal long TxPackets, TxBytes, TxDrops, TxErrors;
    internal long RxPackets, RxBytes, RxDrops, RxErrors;
    internal long FatalResets, RxStalls;
    // Times this queue found its tap deleted under it (EBADFD).
    internal long TapGone;

    /// <summary>
    /// GC.GetAllocatedBytesForCurrentThread of the queue thread after its last pass: the per-packet
    /// zero-allocation rule is checked against this exactly (it is read once per pass, not per packet).
    /// </summary>
    internal long ThreadAllocatedBytes;

    /// <summary>Passes completed (published after <see cref="ThreadAllocatedBytes"/>).</summary>
    internal long Passes;

    public NetQueueStats Snapshot() => new(
        Volatile.Read(ref TxPackets), Volatile.Read(ref TxBytes), Volatile.Read(ref TxDrops), Volatile.Read(ref TxErrors),
        Volatile.Read(ref RxPackets), Volatile.Read(ref RxBytes), Volatile.Read(ref RxDrops), Volatile.Read(ref RxErrors),
        Volatile.Read(ref FatalResets), Volatile.Read(ref RxStalls), Volatile.Read(ref TapGone), Volatile.Read(ref Passes));
}

/// <summary>
/// A consistent-enough copy of <see cref="NetQueueCounters"/> (each field is exact; fields are read one
/// by one). <c>Passes</c>: times the queue thread served its rings; packets per pass is how well it
/// batches (RX coalescing raises it).
/// </summary>
public readonly record struct NetQueueStats(
    long TxPackets, long TxBytes, long TxDrops, long TxErrors,
    long RxPackets, long RxBytes, long RxDrops, long RxErrors,
    long FatalResets, long RxStalls, long TapGone = 0, long Passes = 0);
