namespace XenBackends.Backend.Block;

/// <summary>
/// Per-device counters with the names and meaning of Linux blkback's sysfs <c>statistics/</c>
/// directory (oo_req, rd_req, wr_req, f_req, ds_req, rd_sect, wr_sect), so existing monitoring
/// keeps working, plus a completion-latency histogram. Queue workers update it with interlocked
/// adds; any thread (the service's status command) may read it at any time without locks.
/// </summary>
public sealed class BlockStatistics
{
    private long _ooReq, _rdReq, _wrReq, _fReq, _dsReq, _rdSect, _wrSect, _errors, _eopnotsupp, _ringFaults, _ioErrors, _sleeps, _pollHits;
    private int _lastIoErrno;

    /// <summary>Times a queue stopped taking requests because its buffers or slots were all in use.</summary>
    public long OutOfResourceRequests => Volatile.Read(ref _ooReq);
    public long ReadRequests => Volatile.Read(ref _rdReq);
    /// <summary>Writes, including barriers (blkback counts WRITE_BARRIER as a write).</summary>
    public long WriteRequests => Volatile.Read(ref _wrReq);
    /// <summary>FLUSH_DISKCACHE and WRITE_BARRIER requests.</summary>
    public long FlushRequests => Volatile.Read(ref _fReq);
    public long DiscardRequests => Volatile.Read(ref _dsReq);
    /// <summary>512-byte sectors read.</summary>
    public long ReadSectors => Volatile.Read(ref _rdSect);
    /// <summary>512-byte sectors written.</summary>
    public long WriteSectors => Volatile.Read(ref _wrSect);
    /// <summary>Requests answered BLKIF_RSP_ERROR (bad requests and I/O errors).</summary>
    public long ErrorResponses => Volatile.Read(ref _errors);
    /// <summary>Of those, requests the image failed (an I/O error or a short transfer), not the guest.</summary>
    public long IoErrors => Volatile.Read(ref _ioErrors);
    /// <summary>The errno of the latest failed I/O (0: none yet, or only short transfers).</summary>
    public int LastIoErrno => Volatile.Read(ref _lastIoErrno);
    /// <summary>Requests answered BLKIF_RSP_EOPNOTSUPP.</summary>
    public long NotSupportedResponses => Volatile.Read(ref _eopnotsupp);
    /// <summary>Rings halted because the frontend published an impossible req_prod.</summary>
    public long RingFaults => Volatile.Read(ref _ringFaults);

    /// <summary>Times a queue worker slept waiting for the guest, its completions or a stop.</summary>
    public long Sleeps => Volatile.Read(ref _sleeps);
    /// <summary>Sleeps avoided: idle spells that polling the ring ended (BlockBackendOptions.PollTime).</summary>
    public long PollHits => Volatile.Read(ref _pollHits);

    public LatencyHistogram Latency { get; } = new();

    internal void CountOutOfResources() => Interlocked.Increment(ref _ooReq);
    internal void CountRead(long sectors) { Interlocked.Increment(ref _rdReq); Interlocked.Add(ref _rdSect, sectors); }
    internal void CountWrite(long sectors) { Interlocked.Increment(ref _wrReq); Interlocked.Add(ref _wrSect, sectors); }
    internal void CountFlush() => Interlocked.Increment(ref _fReq);
    internal void CountDiscard() => Interlocked.Increment(ref _dsReq);
    internal void CountError() => Interlocked.Increment(ref _errors);
    internal void CountIoError(int errno)
    {
        Interlocked.Increment(ref _ioErrors);
        if (errno != 0) Volatile.Write(ref _lastIoErrno, errno);
    }
    internal void CountNotSupported() => Interlocked.Increment(ref _eopnotsupp);
    internal void CountRingFault() => Interlocked.Increment(ref _ringFaults);
    internal void CountSleep() => Interlocked.Increment(ref _sleeps);
    internal void CountPollHit() => Interlocked.Increment(ref _pollHits);
}
