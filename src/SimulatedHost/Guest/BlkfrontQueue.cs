using XenBackends.Rings;
using XenBackends.Rings.Blkif;

namespace XenBackends.SimulatedHost.Guest;

/// <summary>
/// One blkfront ring (<c>struct blkfront_ring_info</c>): its pages granted to the backend, its event
/// channel, and the shadow of requests in flight, indexed by request id as Linux does.
/// </summary>
internal sealed class BlkfrontQueue
{
    private readonly SimulatedDomain _domain;
    private readonly SimulatedEventChannels _events;
    private readonly BlkifAbi _abi;
    private readonly Lock _lock = new();
    private readonly Pending?[] _shadow;
    private readonly Stack<ulong> _freeIds = new();
    private readonly SemaphoreSlim _slots;
    private bool _stopped;
    // What a request gets once the ring is gone: ERROR after teardown, Requeue after suspend.
    private short _stopStatus = BlkifRsp.Error;

    /// <summary>
    /// Not a blkif status: the request was in flight (or waiting for a slot) when the guest was
    /// suspended, and must be issued again whole once the frontend has reconnected (blkif_recover).
    /// </summary>
    public const short Requeue = short.MinValue;

    private BlkfrontQueue(SimulatedDomain domain, SimulatedEventChannels events, BlkifAbi abi, GuestRegion region, uint[] grefs, uint port)
    {
        _domain = domain;
        _events = events;
        _abi = abi;
        Region = region;
        RingRefs = grefs;
        Port = port;
        Ring = FrontRing.Initialize(region, BlkifProtocol.Layout(abi));
        _shadow = new Pending?[Ring.Size];
        for (ulong id = Ring.Size; id-- > 0;)
            _freeIds.Push(id);
        _slots = new SemaphoreSlim((int)Ring.Size, (int)Ring.Size);
    }

    public GuestRegion Region { get; }

    public uint[] RingRefs { get; }

    /// <summary>The guest's local port, the value written as event-channel.</summary>
    public uint Port { get; }

    public FrontRing Ring { get; }

    /// <summary>setup_blkring: SHARED_RING_INIT on 2^order fresh pages, one grant per page, an unbound port.</summary>
    public static BlkfrontQueue Setup(SimulatedDomain domain, SimulatedEventChannels events, ushort backendDomid, uint order, BlkifAbi abi)
    {
        int pages = 1 << (int)order;
        uint first = domain.Memory.AllocateContiguous(pages);
        var grefs = new uint[pages];
        for (int i = 0; i < pages; i++)
            grefs[i] = domain.Grants.GrantAccess(backendDomid, first + (uint)i, readOnly: false);
        uint port = events.BindUnboundPort(backendDomid);
        return new BlkfrontQueue(domain, events, abi, new GuestRegion(domain.Memory, first, pages), grefs, port);
    }

    private bool IsStopped
    {
        get
        {
            lock (_lock)
                return _stopped;
        }
    }

    public int InFlight
    {
        get
        {
            lock (_lock)
                return _shadow.Count(p => p is not null);
        }
    }

    /// <summary>Queues one request; <paramref name="build"/> writes the slot given the id, under the ring lock.</summary>
    public async Task<short> SubmitAsync(Action<FrontRing, ulong> build, Pending pending, CancellationToken ct)
    {
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        bool notify;
        lock (_lock)
        {
            if (_stopped)
            {
                _slots.Release();
                pending.Complete(_stopStatus);
                return pending.Task.Result;
            }
            ulong id = _freeIds.Pop();
            _shadow[id] = pending;
            build(Ring, id);
            notify = Ring.PushRequestsAndCheckNotify();
        }
        if (notify)
        {
            try
            {
                _events.Notify(Port);
            }
            catch (Native.XenNativeException) when (IsStopped)
            {
                // Suspended between the push and the kick: Suspend unbound the port and handed this
                // request back for re-issue, so the pending task completes after resume.
            }
        }
        return await pending.Task.ConfigureAwait(false);
    }

    /// <summary>blkif_interrupt: consume every response, re-arming rsp_event before giving up.</summary>
    public void HandleResponses()
    {
        var done = new List<(Pending Pending, short Status)>();
        lock (_lock)
        {
            if (_stopped)
                return;
            do
            {
                while (TryConsume(out ulong id, out byte operation, out short status))
                {
                    if (id >= (ulong)_shadow.Length || _shadow[id] is not { } pending)
                        throw new InvalidDataException($"blkback answered request id {id}, which is not in flight");
                    // Linux blkfront (XSA-376 hardening) checks the response's operation against the
                    // request's, with an indirect request's indirect_op standing for it, and disables
                    // the disk on a mismatch ("response has wrong operation (6 instead of 1)", seen in
                    // the Xen lab): the real kernel blkback answers indirect requests that way too.
                    if (operation != pending.Operation)
                        throw new InvalidDataException($"blkback answered request id {id} with operation {operation} instead of {pending.Operation}");
                    _shadow[id] = null;
                    _freeIds.Push(id);
                    done.Add((pending, status));
                }
                if (Ring.Fault != RingFault.None)
                    throw new InvalidDataException($"the backend broke the ring: {Ring.Fault}");
            }
            while (Ring.FinalCheckForResponses() == RingPoll.Work);
        }
        foreach (var (pending, status) in done)
        {
            _slots.Release();
            pending.Complete(status);
        }
    }

    private bool TryConsume(out ulong id, out byte operation, out short status)
    {
        RingRead read;
        if (_abi == BlkifAbi.X86_32)
        {
            read = Ring.TryConsumeResponse(out BlkifX86_32Response r);
            (id, operation, status) = (r.Id, r.Operation, r.Status);
        }
        else
        {
            read = Ring.TryConsumeResponse(out BlkifX86_64Response r);
            (id, operation, status) = (r.Id, r.Operation, r.Status);
        }
        return read == RingRead.Item;
    }

    /// <summary>
    /// blkfront_resume's half of blkif_free for a suspended guest: the shadow's requests are handed
    /// back for re-issue (never failed), and the ring and its port are dropped without ending grants:
    /// they belong to the old domain, which is destroyed with everything granted from it.
    /// </summary>
    public void Suspend()
    {
        List<Pending> orphans;
        lock (_lock)
        {
            if (_stopped)
                return;
            _stopped = true;
            _stopStatus = Requeue;
            orphans = [.. _shadow.OfType<Pending>()];
            Array.Clear(_shadow);
        }
        ReleaseOrphans(orphans, Requeue);
        try
        {
            _events.Unbind(Port);
        }
        catch (Exception e) when (e is Native.XenNativeException or ObjectDisposedException)
        {
        }
    }

    private void ReleaseOrphans(List<Pending> orphans, short status)
    {
        foreach (var pending in orphans)
        {
            // Their slots come back too, so submitters still waiting for one wake and see the stop.
            _slots.Release();
            pending.Complete(status);
        }
    }

    /// <summary>blkif_free: fails what is in flight, closes the port, ends the ring grants.</summary>
    public void Teardown()
    {
        List<Pending> orphans;
        lock (_lock)
        {
            if (_stopped)
                return;
            _stopped = true;
            orphans = [.. _shadow.OfType<Pending>()];
            Array.Clear(_shadow);
        }
        ReleaseOrphans(orphans, BlkifRsp.Error);
        try
        {
            _events.Unbind(Port);
        }
        catch (Exception e) when (e is Native.XenNativeException or ObjectDisposedException)
        {
        }
        bool allEnded = true;
        foreach (uint gref in RingRefs)
            allEnded &= _domain.Grants.EndAccess(gref);
        if (allEnded)
            for (int i = 0; i < Region.Pages; i++)
                _domain.Memory.FreePage(Region.FirstFrame + (uint)i);
    }

    /// <summary>
    /// A request in flight: the operation its response must carry (an indirect request's
    /// indirect_op), and what to do with its pages once the backend answers.
    /// </summary>
    internal sealed class Pending(byte operation, Action<short>? onComplete)
    {
        public byte Operation => operation;

        private readonly TaskCompletionSource<short> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<short> Task => _done.Task;

        public void Complete(short status)
        {
            try
            {
                onComplete?.Invoke(status);
            }
            finally
            {
                _done.TrySetResult(status);
            }
        }
    }
}
