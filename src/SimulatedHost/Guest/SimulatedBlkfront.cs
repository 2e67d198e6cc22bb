using System.Globalization;
using System.Runtime.InteropServices;
using XenBackends.Rings;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Guest;

/// <summary>
/// Linux xen-blkfront in a simulated guest: negotiates with the backend as <c>talk_to_blkback</c> and
/// <c>blkfront_connect</c> do (same keys, one transaction, same states), then moves sector ranges through
/// granted guest pages. Requests are sent as asked, whatever the backend advertised, so a test can also
/// see how a backend answers an operation it does not offer.
/// </summary>
public sealed class SimulatedBlkfront : XenbusFrontend
{
    private readonly BlkfrontOptions _options;
    // Per domain: a restored guest binds its ports in the new domain.
    private SimulatedEventChannels _events;
    private BlkfrontQueue[] _queues = [];
    private GrantedPages? _pages;
    private Task _eventLoop = Task.CompletedTask;
    private CancellationTokenSource? _eventStop;
    private int _nextQueue;
    private bool _connected;
    // Open while requests may be issued; reset at suspend, opened again by blkif_recover.
    private volatile TaskCompletionSource _running = Opened();
    private volatile bool _recovering;
    private int _reissued;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<byte, int> _reissuedByOp = new();

    private SimulatedBlkfront(SimulatedGuest guest, int devid, BlkfrontOptions options)
        : base(guest, "vbd", devid)
    {
        _options = options;
        _events = guest.Host.OpenEventChannels(guest.Domid);
        Hostile = new FrontendHostile(this, () => [.. _queues.Select(q => q.Ring)]);
    }

    /// <summary>Probes device/vbd/&lt;devid&gt; of the guest; negotiation starts when the backend reaches InitWait.</summary>
    public static async Task<SimulatedBlkfront> AttachAsync(SimulatedGuest guest, int devid, BlkfrontOptions? options = null, CancellationToken cancellationToken = default)
    {
        var front = new SimulatedBlkfront(guest, devid, options ?? new BlkfrontOptions());
        try
        {
            await front.StartAsync(cancellationToken).ConfigureAwait(false);
            return front;
        }
        catch
        {
            await front.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public BlkifAbi Abi => _options.Abi;

    public uint RingPageOrder { get; private set; }

    public int NumQueues => _queues.Length;

    public ulong Sectors { get; private set; }

    public uint Info { get; private set; }

    public uint SectorSize { get; private set; }

    public uint PhysicalSectorSize { get; private set; }

    public bool FeatureFlushCache { get; private set; }

    public bool FeatureBarrier { get; private set; }

    public bool FeatureDiscard { get; private set; }

    public uint DiscardGranularity { get; private set; }

    public uint DiscardAlignment { get; private set; }

    public bool DiscardSecure { get; private set; }

    /// <summary>Both ends said feature-persistent=1: data pages are granted once and reused.</summary>
    public bool Persistent { get; private set; }

    /// <summary>Segments per indirect request, or 0 when indirect descriptors are not used (Linux: ≤ 11 means none).</summary>
    public uint MaxIndirectSegments { get; private set; }

    /// <summary>How many times a Connected backend changed <c>sectors</c> (online resize).</summary>
    public int ResizeCount { get; private set; }

    public bool IsConnected => _connected && State == XenbusState.Connected;

    /// <summary>Raw access for hostile-guest tests; nothing else uses it.</summary>
    public FrontendHostile Hostile { get; }

    /// <summary>Requests blkif_recover issued again after a resume (each time one was in flight at a suspend).</summary>
    public int ReissuedRequests => Volatile.Read(ref _reissued);

    /// <summary><see cref="ReissuedRequests"/> by blkif operation (indirect ones counted as their indirect_op).</summary>
    public IReadOnlyDictionary<byte, int> ReissuedByOperation => _reissuedByOp;

    public Task WaitConnectedAsync(TimeSpan timeout) => WaitUntilAsync(() => IsConnected, timeout, "connect");

    private protected override async Task OtherEndChangedAsync(XenbusState backendState)
    {
        switch (backendState)
        {
            case XenbusState.InitWait:
                if (State == XenbusState.Initialising)
                    await TalkToBlkbackAsync(Stopping).ConfigureAwait(false);
                break;
            case XenbusState.Connected:
                // A backend rewriting Connected while we are connected is announcing a resize.
                if (State != XenbusState.Initialised && State != XenbusState.Connected)
                    await TalkToBlkbackAsync(Stopping).ConfigureAwait(false);
                await ConnectAsync(Stopping).ConfigureAwait(false);
                break;
            case XenbusState.Closed:
                if (State == XenbusState.Closed)
                    break;
                await ClosingAsync(Stopping).ConfigureAwait(false);
                break;
            case XenbusState.Closing:
                await ClosingAsync(Stopping).ConfigureAwait(false);
                break;
        }
    }

    private async Task TalkToBlkbackAsync(CancellationToken ct)
    {
        uint maxOrder = await ReadBackendUIntAsync("max-ring-page-order", 0, ct).ConfigureAwait(false);
        RingPageOrder = Math.Min(maxOrder, _options.MaxRingPageOrder);
        uint backendQueues = await ReadBackendUIntAsync("multi-queue-max-queues", 1, ct).ConfigureAwait(false);
        uint nrQueues = Math.Max(1, Math.Min(backendQueues, _options.MaxQueues));
        FreeRings();
        _queues = new BlkfrontQueue[nrQueues];
        for (int i = 0; i < nrQueues; i++)
            _queues[i] = BlkfrontQueue.Setup(Guest.Domain, _events, OtherEndId, RingPageOrder, _options.Abi);
        StartEventLoop();

        await Xs.RunTransactionAsync(async t =>
        {
            if (RingPageOrder > 0)
                await t.WriteAsync(NodeName + "/ring-page-order", Num(RingPageOrder), ct).ConfigureAwait(false);
            if (_queues.Length == 1)
            {
                await WritePerRingNodesAsync(t, _queues[0], NodeName, ct).ConfigureAwait(false);
            }
            else
            {
                await t.WriteAsync(NodeName + "/multi-queue-num-queues", Num(_queues.Length), ct).ConfigureAwait(false);
                for (int i = 0; i < _queues.Length; i++)
                    await WritePerRingNodesAsync(t, _queues[i], $"{NodeName}/queue-{i}", ct).ConfigureAwait(false);
            }
            await t.WriteAsync(NodeName + "/protocol", _options.Abi == BlkifAbi.X86_32 ? BlkifProtocol.X86_32 : BlkifProtocol.X86_64, ct).ConfigureAwait(false);
            await t.WriteAsync(NodeName + "/feature-persistent", _options.FeaturePersistent ? "1" : "0", ct).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        await SwitchStateAsync(XenbusState.Initialised, ct).ConfigureAwait(false);
    }

    private async Task WritePerRingNodesAsync(XenStoreTransaction t, BlkfrontQueue queue, string dir, CancellationToken ct)
    {
        if (queue.RingRefs.Length == 1)
        {
            await t.WriteAsync(dir + "/ring-ref", Num(queue.RingRefs[0]), ct).ConfigureAwait(false);
        }
        else
        {
            for (int i = 0; i < queue.RingRefs.Length; i++)
                await t.WriteAsync($"{dir}/ring-ref{i}", Num(queue.RingRefs[i]), ct).ConfigureAwait(false);
        }
        await t.WriteAsync(dir + "/event-channel", Num(queue.Port), ct).ConfigureAwait(false);
    }

    /// <summary>blkfront_connect: the first time gathers the backend's features; later only re-reads sectors.</summary>
    private async Task ConnectAsync(CancellationToken ct)
    {
        if (_connected)
        {
            ulong sectors = await ReadBackendULongAsync("sectors", null, ct).ConfigureAwait(false);
            if (sectors != Sectors)
            {
                Sectors = sectors;
                ResizeCount++;
            }
            return;
        }
        FeatureBarrier = await ReadBackendUIntAsync("feature-barrier", 0, ct).ConfigureAwait(false) != 0;
        FeatureFlushCache = await ReadBackendUIntAsync("feature-flush-cache", 0, ct).ConfigureAwait(false) != 0;
        FeatureDiscard = await ReadBackendUIntAsync("feature-discard", 0, ct).ConfigureAwait(false) != 0;
        if (FeatureDiscard)
        {
            DiscardGranularity = await ReadBackendUIntAsync("discard-granularity", 0, ct).ConfigureAwait(false);
            DiscardAlignment = await ReadBackendUIntAsync("discard-alignment", 0, ct).ConfigureAwait(false);
            DiscardSecure = await ReadBackendUIntAsync("discard-secure", 0, ct).ConfigureAwait(false) != 0;
        }
        Persistent = _options.FeaturePersistent && await ReadBackendUIntAsync("feature-persistent", 0, ct).ConfigureAwait(false) != 0;
        uint indirect = Math.Min(await ReadBackendUIntAsync("feature-max-indirect-segments", 0, ct).ConfigureAwait(false), _options.MaxIndirectSegments);
        MaxIndirectSegments = indirect <= BlkifLimits.MaxSegmentsPerRequest ? 0 : indirect;
        Sectors = await ReadBackendULongAsync("sectors", null, ct).ConfigureAwait(false);
        Info = await ReadBackendUIntAsync("info", null, ct).ConfigureAwait(false);
        SectorSize = await ReadBackendUIntAsync("sector-size", null, ct).ConfigureAwait(false);
        PhysicalSectorSize = await ReadBackendUIntAsync("physical-sector-size", SectorSize, ct).ConfigureAwait(false);
        _pages = new GrantedPages(Guest.Domain, OtherEndId, Persistent);
        _connected = true;
        await SwitchStateAsync(XenbusState.Connected, ct).ConfigureAwait(false);
        if (_recovering)
        {
            // blkif_recover: the features above were all re-read because the new backend may
            // differ; now every request the shadow held goes out again, whole.
            _recovering = false;
            _running.TrySetResult();
        }
    }

    /// <summary>blkfront_closing: no more requests; the frontend goes straight to Closed (xenbus_frontend_closed).</summary>
    private async Task ClosingAsync(CancellationToken ct)
    {
        if (State == XenbusState.Closing)
            return;
        _connected = false;
        await SwitchStateAsync(XenbusState.Closed, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The guest re-initialises the device (driver reload, resume): rings freed, state Initialising, and a
    /// backend that went back to InitWait gets a fresh talk_to_blkback. Wait with <see cref="WaitConnectedAsync"/>.
    /// </summary>
    public async Task ReconnectAsync(CancellationToken cancellationToken = default)
    {
        await ResetConnectionAsync(() => { _connected = false; FreeRings(); }, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        await WithGateAsync(async () =>
        {
            _connected = false;
            FreeRings();
            await SwitchStateAsync(XenbusState.Initialising, cancellationToken).ConfigureAwait(false);
            // The backend may already be in InitWait (nothing left to fire our watch).
            BackendState = XenbusStates.Parse(await Xs.TryReadStringAsync(OtherEnd + "/state", cancellationToken).ConfigureAwait(false));
            if (BackendState == XenbusState.InitWait && State == XenbusState.Initialising)
                await TalkToBlkbackAsync(cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Guest-side shutdown (xenbus_dev_shutdown): Closing, wait for the backend to close, then Closed.
    /// Linux stops at Closing when the guest is going away; here the frontend finishes at Closed so a
    /// backend sees the whole handshake.
    /// </summary>
    public async Task CloseAsync(TimeSpan timeout)
    {
        await WithGateAsync(async () =>
        {
            _connected = false;
            await SwitchStateAsync(XenbusState.Closing, Stopping).ConfigureAwait(false);
        }, Stopping).ConfigureAwait(false);
        await WaitUntilAsync(() => BackendState is XenbusState.Closing or XenbusState.Closed, timeout, "backend closing").ConfigureAwait(false);
        await WithGateAsync(async () =>
        {
            FreeRings();
            await SwitchStateAsync(XenbusState.Closed, Stopping).ConfigureAwait(false);
        }, Stopping).ConfigureAwait(false);
    }

    public Task<short> ReadAsync(ulong sector, Memory<byte> buffer, int? queue = null, CancellationToken cancellationToken = default) =>
        TransferWholeAsync(BlkifOp.Read, sector, buffer.Length, write: null, read: buffer, queue, cancellationToken);

    public Task<short> WriteAsync(ulong sector, ReadOnlyMemory<byte> data, int? queue = null, CancellationToken cancellationToken = default) =>
        TransferWholeAsync(BlkifOp.Write, sector, data.Length, write: data, read: null, queue, cancellationToken);

    /// <summary>BLKIF_OP_WRITE_BARRIER, with or without data (an empty one is how Linux flushes over feature-barrier).</summary>
    public Task<short> BarrierAsync(ulong sector, ReadOnlyMemory<byte> data, int? queue = null, CancellationToken cancellationToken = default) =>
        TransferWholeAsync(BlkifOp.WriteBarrier, sector, data.Length, write: data, read: null, queue, cancellationToken);

    /// <summary>BLKIF_OP_FLUSH_DISKCACHE with no segments.</summary>
    public Task<short> FlushAsync(int? queue = null, CancellationToken cancellationToken = default) =>
        // sector_number (sector_t)-1, as Linux blkfront sends it (blk_rq_init; seen on real Xen).
        TransferWholeAsync(BlkifOp.FlushDiskCache, ulong.MaxValue, 0, write: ReadOnlyMemory<byte>.Empty, read: null, queue, cancellationToken);

    public Task<short> DiscardAsync(ulong sector, ulong nrSectors, bool secure = false, int? queue = null, CancellationToken cancellationToken = default) =>
        IssueAsync(BlkifOp.Discard, reissue => DiscardOnceAsync(sector, nrSectors, secure, reissue ? null : queue, cancellationToken), cancellationToken);

    /// <summary>
    /// The block layer's side of a request: issue it, and if a suspend took it back (it was in the
    /// shadow when the guest froze), wait for blkif_recover and issue it again, whole, on whatever
    /// queue the new connection offers. The caller sees one completion with the final status.
    /// </summary>
    private async Task<short> IssueAsync(byte op, Func<bool, Task<short>> attempt, CancellationToken ct)
    {
        bool reissue = false;
        while (true)
        {
            await _running.Task.WaitAsync(ct).ConfigureAwait(false);
            short status;
            try
            {
                status = await attempt(reissue).ConfigureAwait(false);
            }
            catch (InvalidOperationException) when (_recovering)
            {
                continue; // the suspend came between the gate and the ring: not yet issued at all
            }
            if (status != BlkfrontQueue.Requeue)
                return status;
            reissue = true;
            Interlocked.Increment(ref _reissued);
            _reissuedByOp.AddOrUpdate(op, 1, (_, n) => n + 1);
        }
    }

    /// <summary>
    /// A read or write too large for the new backend's segment limit is split, as blkif_recover
    /// splits a bio whose segments no longer fit; the parts complete as one.
    /// </summary>
    private Task<short> TransferWholeAsync(byte op, ulong sector, int length, ReadOnlyMemory<byte>? write, Memory<byte>? read, int? queue, CancellationToken ct) =>
        IssueAsync(op, async reissue =>
        {
            int nseg = (length + 4095) / 4096;
            if (!reissue || op is not (BlkifOp.Read or BlkifOp.Write) || nseg <= MaxSegments)
                return await TransferAsync(op, sector, length, write, read, reissue ? null : queue, ct).ConfigureAwait(false);
            int chunk = MaxSegments * 4096;
            var parts = new List<Task<short>>();
            for (int offset = 0; offset < length; offset += chunk)
            {
                int n = Math.Min(chunk, length - offset);
                parts.Add(TransferWholeAsync(op, sector + (ulong)(offset / BlkifLimits.SectorSize), n,
                    write?.Slice(offset, n), read?.Slice(offset, n), null, ct));
            }
            short[] statuses = await Task.WhenAll(parts).ConfigureAwait(false);
            return statuses.FirstOrDefault(s => s != BlkifRsp.Okay, BlkifRsp.Okay);
        }, ct);

    private Task<short> DiscardOnceAsync(ulong sector, ulong nrSectors, bool secure, int? queue, CancellationToken cancellationToken)
    {
        var q = PickQueue(queue);
        ushort handle = Handle;
        var pending = new BlkfrontQueue.Pending(BlkifOp.Discard, null);
        return q.SubmitAsync((ring, id) =>
        {
            byte flag = secure ? BlkifDiscardFlags.Secure : (byte)0;
            if (Abi == BlkifAbi.X86_32)
                ring.PutRequest(new BlkifX86_32RequestDiscard { Operation = BlkifOp.Discard, Flag = flag, Handle = handle, Id = id, SectorNumber = sector, NrSectors = nrSectors });
            else
                ring.PutRequest(new BlkifX86_64RequestDiscard { Operation = BlkifOp.Discard, Flag = flag, Handle = handle, Id = id, SectorNumber = sector, NrSectors = nrSectors });
        }, pending, cancellationToken);
    }

    /// <summary>Segments one request may carry now: the indirect maximum, or 11.</summary>
    public int MaxSegments => MaxIndirectSegments > 0 ? (int)MaxIndirectSegments : BlkifLimits.MaxSegmentsPerRequest;

    private async Task<short> TransferAsync(byte op, ulong sector, int length, ReadOnlyMemory<byte>? write, Memory<byte>? read, int? queue, CancellationToken ct)
    {
        if (length % BlkifLimits.SectorSize != 0)
            throw new ArgumentException($"{length} bytes is not a whole number of 512-byte sectors");
        int nseg = (length + 4095) / 4096;
        // blkif.h allows only READ and WRITE as indirect_op: barriers keep to 11 segments.
        int max = op is BlkifOp.Read or BlkifOp.Write ? MaxSegments : BlkifLimits.MaxSegmentsPerRequest;
        if (nseg > max)
            throw new ArgumentException($"{length} bytes need {nseg} segments; this connection allows {max} per request");
        var pages = _pages ?? throw new InvalidOperationException("the frontend is not connected");
        var q = PickQueue(queue);
        bool backendWrites = read is not null;
        var data = new GrantedPage[nseg];
        for (int i = 0; i < nseg; i++)
        {
            data[i] = pages.Rent(backendWrites);
            if (write is { } w)
            {
                var chunk = w.Span.Slice(i * 4096, Math.Min(4096, length - i * 4096));
                chunk.CopyTo(Guest.Domain.Memory.Page(data[i].Frame));
            }
        }
        bool indirect = nseg > BlkifLimits.MaxSegmentsPerRequest;
        var indirectPages = indirect ? new GrantedPage[BlkifRequest.IndirectPagesFor(nseg)] : [];
        for (int i = 0; i < indirectPages.Length; i++)
        {
            indirectPages[i] = pages.Rent(backendWrites: false);
            var segs = MemoryMarshal.Cast<byte, BlkifRequestSegment>(Guest.Domain.Memory.Page(indirectPages[i].Frame));
            for (int s = i * BlkifLimits.SegmentsPerIndirectPage; s < Math.Min(nseg, (i + 1) * BlkifLimits.SegmentsPerIndirectPage); s++)
                segs[s % BlkifLimits.SegmentsPerIndirectPage] = Segment(data[s], SegmentBytes(length, s));
        }
        var pending = new BlkfrontQueue.Pending(op, status =>
        {
            if (read is { } r && status == BlkifRsp.Okay)
                for (int i = 0; i < nseg; i++)
                    Guest.Domain.Memory.Page(data[i].Frame)[..SegmentBytes(length, i)].CopyTo(r.Span[(i * 4096)..]);
            foreach (var page in data)
                pages.Return(page);
            foreach (var page in indirectPages)
                pages.Return(page);
        });
        ushort handle = Handle;
        return await q.SubmitAsync((ring, id) =>
        {
            if (indirect)
                PutIndirect(ring, op, id, sector, handle, nseg, indirectPages);
            else
                PutDirect(ring, op, id, sector, handle, data, length);
        }, pending, ct).ConfigureAwait(false);
    }

    private void PutDirect(FrontRing ring, byte op, ulong id, ulong sector, ushort handle, GrantedPage[] data, int length)
    {
        var segs = new BlkifSegmentArray();
        for (int i = 0; i < data.Length; i++)
            segs[i] = Segment(data[i], SegmentBytes(length, i));
        if (Abi == BlkifAbi.X86_32)
            ring.PutRequest(new BlkifX86_32Request { Operation = op, NrSegments = (byte)data.Length, Handle = handle, Id = id, SectorNumber = sector, Seg = segs });
        else
            ring.PutRequest(new BlkifX86_64Request { Operation = op, NrSegments = (byte)data.Length, Handle = handle, Id = id, SectorNumber = sector, Seg = segs });
    }

    private void PutIndirect(FrontRing ring, byte op, ulong id, ulong sector, ushort handle, int nseg, GrantedPage[] indirectPages)
    {
        var grefs = new BlkifIndirectGrefArray();
        for (int i = 0; i < indirectPages.Length; i++)
            grefs[i] = indirectPages[i].Gref;
        if (Abi == BlkifAbi.X86_32)
            ring.PutRequest(new BlkifX86_32RequestIndirect { Operation = BlkifOp.Indirect, IndirectOp = op, NrSegments = (ushort)nseg, Id = id, SectorNumber = sector, Handle = handle, IndirectGrefs = grefs });
        else
            ring.PutRequest(new BlkifX86_64RequestIndirect { Operation = BlkifOp.Indirect, IndirectOp = op, NrSegments = (ushort)nseg, Id = id, SectorNumber = sector, Handle = handle, IndirectGrefs = grefs });
    }

    private static int SegmentBytes(int length, int index) => Math.Min(4096, length - index * 4096);

    private static BlkifRequestSegment Segment(GrantedPage page, int bytes) =>
        new() { Gref = page.Gref, FirstSect = 0, LastSect = (byte)(bytes / BlkifLimits.SectorSize - 1) };

    // blkfront's info->handle: the number after the last '/' of the node name, truncated to the u16 field.
    private ushort Handle => (ushort)DevId;

    private BlkfrontQueue PickQueue(int? queue)
    {
        var queues = _queues;
        if (!IsConnected || queues.Length == 0)
            throw new InvalidOperationException($"{NodeName} is not connected (state {State})");
        int index = queue ?? (int)((uint)Interlocked.Increment(ref _nextQueue) % (uint)queues.Length);
        return queues[index];
    }

    private void StartEventLoop()
    {
        _eventStop?.Cancel();
        var stop = CancellationTokenSource.CreateLinkedTokenSource(Stopping);
        _eventStop = stop;
        var queues = _queues;
        _eventLoop = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    uint port = await _events.WaitPendingAsync(stop.Token).ConfigureAwait(false);
                    foreach (var q in queues)
                        if (q.Port == port)
                            q.HandleResponses();
                    _events.Unmask(port);
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                Fail(e);
            }
            catch (Exception)
            {
                // Torn down under our feet: the ports are gone and nothing is waiting.
            }
        });
    }

    private void FreeRings()
    {
        _eventStop?.Cancel();
        try
        {
            _eventLoop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
        foreach (var q in _queues)
            q.Teardown();
        _queues = [];
        _pages?.Release();
        _pages = null;
    }

    private protected override void StopRings()
    {
        FreeRings();
        _events.Dispose();
        // A halted guest issues nothing more: anyone waiting for a resume gets an error, not a hang.
        _recovering = false;
        _running.TrySetResult();
    }

    /// <summary>
    /// The guest freezes: no response is consumed any more, and every request in the shadow is taken
    /// back for re-issue. The ring pages and grants stay with the old domain, destroyed after the save.
    /// </summary>
    public override bool SupportsSuspend => true;

    private protected override void SuspendRings()
    {
        _recovering = true;
        _running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _connected = false;
        _eventStop?.Cancel();
        try
        {
            _eventLoop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
        foreach (var q in _queues)
            q.Suspend();
        _queues = [];
        _pages = null;
    }

    private protected override void ResumeRings()
    {
        _events.Dispose();
        _events = Guest.Host.OpenEventChannels(Guest.Domid);
    }

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.TrySetResult();
        return open;
    }

    private async Task<uint> ReadBackendUIntAsync(string key, uint? fallback, CancellationToken ct) =>
        (uint)await ReadBackendULongAsync(key, fallback, ct).ConfigureAwait(false);

    private async Task<ulong> ReadBackendULongAsync(string key, ulong? fallback, CancellationToken ct)
    {
        string? text = await Xs.TryReadStringAsync(OtherEnd + "/" + key, ct).ConfigureAwait(false);
        if (text is null)
            return fallback ?? throw new InvalidDataException($"{OtherEnd}/{key} is missing");
        return ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v)
            ? v
            : fallback ?? throw new InvalidDataException($"{OtherEnd}/{key} is '{text}', not a number");
    }

    private static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);
}
