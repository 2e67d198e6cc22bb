using System.Threading.Channels;
using XenBackends.Rings;
using XenBackends.Rings.Netif;

namespace XenBackends.SimulatedHost.Guest;

/// <summary>
/// One netfront queue (<c>struct netfront_queue</c>): a one-page tx ring and rx ring, one or two event
/// channels, the tx slots in flight by id, and one posted receive page per rx slot.
/// </summary>
internal sealed class NetfrontQueue
{
    private readonly SimulatedDomain _domain;
    private readonly SimulatedEventChannels _events;
    private readonly ushort _backendDomid;
    private readonly int _index;
    private readonly Lock _txLock = new();
    private readonly Lock _rxLock = new();
    private readonly TxSlot?[] _txShadow;
    private readonly Stack<ushort> _txFreeIds = new();
    private readonly SemaphoreSlim _txSpace;
    private readonly GrantedPage?[] _rxBuffers;
    private readonly int _rxTarget;
    private readonly GrantedPages _txPages;
    private readonly ChannelWriter<ReceivedFrame> _received;
    private readonly List<(GrantedPage Page, int Offset, int Length)> _rxPartial = [];
    private (byte, ushort)? _rxGso;
    private ushort _rxFlags;
    private bool _rxInFrame;
    private bool _rxExtrasPending;
    private bool _stopped;
    // What a frame gets when it meets a stopped queue: ERROR after a teardown, DROPPED after a
    // freeze (Linux drops it silently). The token wakes senders waiting for ring space.
    private short _stopStatus = NetifRsp.Error;
    private readonly CancellationTokenSource _stopping = new();

    private NetfrontQueue(SimulatedDomain domain, SimulatedEventChannels events, ushort backendDomid, int index, bool split, int rxTarget, ChannelWriter<ReceivedFrame> received, int generation)
    {
        Generation = generation;
        _domain = domain;
        _events = events;
        _backendDomid = backendDomid;
        _index = index;
        _received = received;
        TxFrame = domain.Memory.AllocatePage();
        RxFrame = domain.Memory.AllocatePage();
        TxRingRef = domain.Grants.GrantAccess(backendDomid, TxFrame, readOnly: false);
        RxRingRef = domain.Grants.GrantAccess(backendDomid, RxFrame, readOnly: false);
        Tx = FrontRing.Initialize(new GuestRegion(domain.Memory, TxFrame, 1), NetifRings.Tx);
        Rx = FrontRing.Initialize(new GuestRegion(domain.Memory, RxFrame, 1), NetifRings.Rx);
        TxPort = events.BindUnboundPort(backendDomid);
        RxPort = split ? events.BindUnboundPort(backendDomid) : TxPort;
        _txShadow = new TxSlot?[Tx.Size];
        for (int id = (int)Tx.Size; id-- > 0;)
            _txFreeIds.Push((ushort)id);
        _txSpace = new SemaphoreSlim((int)Tx.Size, (int)Tx.Size);
        _rxBuffers = new GrantedPage?[Rx.Size];
        _rxTarget = Math.Min(rxTarget, (int)Rx.Size);
        _txPages = new GrantedPages(domain, backendDomid, persistent: false);
    }

    public uint TxFrame { get; }
    public uint RxFrame { get; }
    public uint TxRingRef { get; }
    public uint RxRingRef { get; }
    public uint TxPort { get; }
    public uint RxPort { get; }
    public FrontRing Tx { get; }
    public FrontRing Rx { get; }
    public long TxPackets, TxBytes, TxErrors, TxDropped, RxPackets, RxBytes, RxErrors;

    /// <summary>Which connection of the frontend made this queue (1 = the first; each resume or reconnect adds one).</summary>
    public int Generation { get; }

    public static NetfrontQueue Setup(SimulatedDomain domain, SimulatedEventChannels events, ushort backendDomid, int index, bool split, int rxTarget, ChannelWriter<ReceivedFrame> received, int generation = 1) =>
        new(domain, events, backendDomid, index, split, rxTarget, received, generation);

    /// <summary>xennet_alloc_rx_buffers: posts a receive page in every free slot up to the target, then kicks.</summary>
    public void FillRx()
    {
        bool notify;
        lock (_rxLock)
        {
            if (_stopped) return;
            while (Rx.ReqProdPvt - Rx.RspCons < (uint)_rxTarget)
            {
                ushort id = (ushort)(Rx.ReqProdPvt & (Rx.Size - 1));
                if (_rxBuffers[id] is not { } page)
                {
                    uint frame = _domain.Memory.AllocatePage();
                    page = new GrantedPage(frame, _domain.Grants.GrantAccess(_backendDomid, frame, readOnly: false));
                    _rxBuffers[id] = page;
                }
                Rx.PutRequest(new NetifRxRequest { Id = id, Gref = page.Gref });
            }
            notify = Rx.PushRequestsAndCheckNotify();
        }
        if (notify) _events.Notify(RxPort);
    }

    /// <summary>Kicks both channels, as xennet_connect does once the rings are published.</summary>
    public void KickAll()
    {
        _events.Notify(TxPort);
        if (RxPort != TxPort) _events.Notify(RxPort);
    }

    public async Task<short> SendAsync(ReadOnlyMemory<byte> frame, NetfrontSendOptions options, CancellationToken ct)
    {
        int slotSize = Math.Clamp(options.SlotSize, 1, 4096);
        int nslots = Math.Max(1, (frame.Length + slotSize - 1) / slotSize);
        int needed = nslots + (options.Gso is null ? 0 : 1);
        int acquired = 0;
        try
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct, _stopping.Token);
            for (; acquired < needed; acquired++)
                await _txSpace.WaitAsync(wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            if (acquired > 0) _txSpace.Release(acquired);
            return Stopped();
        }
        var done = new FrameCompletion(nslots, frame.Length, this);
        bool notify;
        lock (_txLock)
        {
            if (_stopped)
            {
                _txSpace.Release(needed);
                return Stopped();
            }
            for (int s = 0; s < nslots; s++)
            {
                int offset = s * slotSize;
                int length = Math.Min(slotSize, frame.Length - offset);
                var page = _txPages.Rent(backendWrites: false);
                frame.Span.Slice(offset, length).CopyTo(_domain.Memory.Page(page.Frame));
                ushort id = _txFreeIds.Pop();
                _txShadow[id] = new TxSlot(page, done);
                ushort flags = 0;
                if (s == 0)
                {
                    if (options.CsumBlank) flags |= NetTxFlags.CsumBlank | NetTxFlags.DataValidated;
                    else if (options.DataValidated) flags |= NetTxFlags.DataValidated;
                    if (options.Gso is not null) flags |= NetTxFlags.ExtraInfo;
                }
                if (s + 1 < nslots) flags |= NetTxFlags.MoreData;
                Tx.PutRequest(new NetifTxRequest { Gref = page.Gref, Offset = 0, Flags = flags, Id = id, Size = (ushort)(s == 0 ? frame.Length : length) });
                if (s == 0 && options.Gso is { } gso)
                {
                    var slot = Tx.NextRequest();
                    new NetifExtraInfo { Type = NetifExtraType.Gso, GsoType = gso.Type, GsoSize = gso.Size }.WriteTo(slot);
                }
            }
            notify = Tx.PushRequestsAndCheckNotify();
        }
        if (notify) _events.Notify(TxPort);
        return await done.Task.ConfigureAwait(false);
    }

    private short Stopped()
    {
        short status = Volatile.Read(ref _stopStatus);
        if (status == NetifRsp.Dropped) Interlocked.Increment(ref TxDropped);
        else Interlocked.Increment(ref TxErrors);
        return status;
    }

    /// <summary>xennet_tx_buf_gc: every response frees its slot; NETIF_RSP_NULL answers an extra.</summary>
    public void CollectTx()
    {
        var finished = new List<(TxSlot Slot, short Status)>();
        int freed = 0;
        lock (_txLock)
        {
            if (_stopped) return;
            do
            {
                while (Tx.TryConsumeResponse(out NetifTxResponse rsp) == RingRead.Item)
                {
                    freed++;
                    if (rsp.Status == NetifRsp.Null) continue;
                    if (rsp.Id >= _txShadow.Length || _txShadow[rsp.Id] is not { } slot)
                        throw new InvalidDataException($"netback answered tx id {rsp.Id}, which is not in flight");
                    _txShadow[rsp.Id] = null;
                    _txFreeIds.Push(rsp.Id);
                    finished.Add((slot, rsp.Status));
                }
                if (Tx.Fault != RingFault.None)
                    throw new InvalidDataException($"the backend broke the tx ring: {Tx.Fault}");
            }
            while (Tx.FinalCheckForResponses() == RingPoll.Work);
        }
        if (freed > 0) _txSpace.Release(freed);
        foreach (var (slot, status) in finished)
        {
            _txPages.Return(slot.Page);
            slot.Frame.SlotDone(status);
        }
    }

    /// <summary>xennet_poll: reassembles frames from rx responses (each in the slot of the request it used), then refills.</summary>
    public void PollRx()
    {
        lock (_rxLock)
        {
            if (_stopped) return;
            do
            {
                while (true)
                {
                    uint idx = Rx.RspCons & (Rx.Size - 1);
                    if (_rxExtrasPending)
                    {
                        if (Rx.TryConsumeResponse(out NetifExtraInfo extra) != RingRead.Item) break;
                        if (extra.Type == NetifExtraType.Gso) _rxGso = (extra.GsoType, extra.GsoSize);
                        _rxExtrasPending = (extra.Flags & NetifExtraFlags.More) != 0;
                        if (!_rxExtrasPending && _rxPendingDeliver)
                            Deliver();
                        continue;
                    }
                    if (Rx.TryConsumeResponse(out NetifRxResponse rsp) != RingRead.Item) break;
                    var page = _rxBuffers[idx] ?? throw new InvalidDataException($"rx response in slot {idx}, which has no buffer posted");
                    // netback answers each rx request in its own slot with its id: any other id names
                    // a buffer this ring never posted (a stale one from before a resume, say).
                    if (rsp.Id != idx)
                        throw new InvalidDataException($"rx response in slot {idx} carries id {rsp.Id}, not the id this ring posted there");
                    if (rsp.Status < 0 || rsp.Offset + rsp.Status > 4096)
                    {
                        RxErrors++;
                        ResetRx();
                        continue;
                    }
                    if (!_rxInFrame)
                    {
                        _rxInFrame = true;
                        _rxFlags = rsp.Flags;
                        _rxExtrasPending = (rsp.Flags & NetRxFlags.ExtraInfo) != 0;
                    }
                    _rxPartial.Add((page, rsp.Offset, rsp.Status));
                    if ((rsp.Flags & NetRxFlags.MoreData) == 0 && !_rxExtrasPending)
                        Deliver();
                    else if ((rsp.Flags & NetRxFlags.MoreData) == 0)
                        _rxPendingDeliver = true;
                }
                if (Rx.Fault != RingFault.None)
                    throw new InvalidDataException($"the backend broke the rx ring: {Rx.Fault}");
            }
            while (Rx.FinalCheckForResponses() == RingPoll.Work);
        }
        FillRx();
    }

    private bool _rxPendingDeliver;

    private void Deliver()
    {
        int total = _rxPartial.Sum(p => p.Length);
        var data = new byte[total];
        int at = 0;
        foreach (var (page, offset, length) in _rxPartial)
        {
            _domain.Memory.Page(page.Frame).Slice(offset, length).CopyTo(data.AsSpan(at));
            at += length;
        }
        RxPackets++;
        RxBytes += total;
        _received.TryWrite(new ReceivedFrame(data, _rxFlags, _rxPartial.Count, _rxGso, _index) { Generation = Generation });
        ResetRx();
    }

    private void ResetRx()
    {
        _rxPartial.Clear();
        _rxGso = null;
        _rxFlags = 0;
        _rxInFrame = false;
        _rxExtrasPending = false;
        _rxPendingDeliver = false;
    }

    /// <summary>
    /// The guest freezes for a save or migration: nothing on either ring is consumed or produced
    /// any more. The tx frames in flight are handed back to be dropped when the guest resumes
    /// (netfront_resume -> xennet_release_tx_bufs frees them; the stack never hears of them, TCP
    /// retransmits). Ports and grants are left alone: they belong to the old domain, which is
    /// destroyed with everything granted from it, so nothing here ends access to them.
    /// </summary>
    public IReadOnlyList<Action> Freeze()
    {
        List<TxSlot> orphans;
        lock (_txLock)
            lock (_rxLock)
            {
                if (_stopped) return [];
                _stopped = true;
                _stopStatus = NetifRsp.Dropped;
                orphans = [.. _txShadow.OfType<TxSlot>()];
                Array.Clear(_txShadow);
                ResetRx(); // a frame half-received from the old backend is never delivered
            }
        _stopping.Cancel();
        return [.. orphans.Select(slot => (Action)(() => slot.Frame.SlotDone(NetifRsp.Dropped)))];
    }

    /// <summary>xennet_disconnect_backend: fails frames in flight, closes ports, ends every grant.</summary>
    public void Teardown()
    {
        List<TxSlot> orphans;
        lock (_txLock)
            lock (_rxLock)
            {
                if (_stopped) return;
                _stopped = true;
                orphans = [.. _txShadow.OfType<TxSlot>()];
                Array.Clear(_txShadow);
            }
        _stopping.Cancel();
        foreach (var slot in orphans)
            slot.Frame.SlotDone(NetifRsp.Error);
        foreach (uint port in RxPort == TxPort ? new[] { TxPort } : new[] { TxPort, RxPort })
        {
            try { _events.Unbind(port); }
            catch (Exception e) when (e is Native.XenNativeException or ObjectDisposedException) { }
        }
        foreach (var buffer in _rxBuffers)
            if (buffer is { } b && _domain.Grants.EndAccess(b.Gref))
                _domain.Memory.FreePage(b.Frame);
        if (_domain.Grants.EndAccess(TxRingRef)) _domain.Memory.FreePage(TxFrame);
        if (_domain.Grants.EndAccess(RxRingRef)) _domain.Memory.FreePage(RxFrame);
    }

    private sealed record TxSlot(GrantedPage Page, FrameCompletion Frame);

    private sealed class FrameCompletion(int slots, int bytes, NetfrontQueue queue)
    {
        private readonly TaskCompletionSource<short> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _remaining = slots;
        private short _status;

        public Task<short> Task => _done.Task;

        public void SlotDone(short status)
        {
            if (status != NetifRsp.Okay && _status == NetifRsp.Okay) _status = status;
            if (Interlocked.Decrement(ref _remaining) != 0) return;
            if (_status == NetifRsp.Okay)
            {
                Interlocked.Increment(ref queue.TxPackets);
                Interlocked.Add(ref queue.TxBytes, bytes);
            }
            else if (_status == NetifRsp.Dropped)
            {
                Interlocked.Increment(ref queue.TxDropped);
            }
            else
            {
                Interlocked.Increment(ref queue.TxErrors);
            }
            _done.TrySetResult(_status);
        }
    }
}
