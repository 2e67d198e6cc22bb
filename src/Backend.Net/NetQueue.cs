using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using XenBackends.Backend.Net.Control;
using XenBackends.Native;
using XenBackends.Native.Linux;
using XenBackends.Native.Tap;
using XenBackends.Rings;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net;

/// <summary>
/// One netif queue's data path: a tx ring, an rx ring, their event channel(s) and one tap queue,
/// served by one dedicated thread sleeping in one epoll (event channels, tap fd, stop eventfd).
/// Everything the guest wrote is copied out of the ring once and validated as Linux netback does
/// (netback-anchors 4.1): FATAL stops the queue and reports the device, DROP answers every slot with
/// NETIF_RSP_ERROR and keeps going. Buffers are pinned arenas allocated up front: no allocation per
/// packet in steady state.
/// </summary>
internal sealed class NetQueue : IDisposable
{
    private const int PageSize = 4096;
    // XEN_NETBK_LEGACY_SLOTS_MAX == XEN_NETIF_NR_SLOTS_MIN: non-first slots a packet may use.
    private const int LegacySlotsMax = Netif.NrSlotsMin;
    // fatal_skb_slots default: more non-first slots than this is a malicious frontend.
    private const int FatalSlots = 20;
    private const int HeaderLength = VirtioNetHeader.Size;
    private const int MaxTxRecord = HeaderLength + Netif.MaxTxSize;
    private const int MaxRxRecord = HeaderLength + 65535 + 64;
    // An rx flush is one grant-copy call, one response push and usually one guest wake-up. It comes
    // after at most 128 segments (eight 64 KiB GSO frames, about half the 256-slot ring) or 64
    // frames, whichever is first. Net.Bench (README, netpipe results): 64 segments (four 64 KiB
    // frames) delivered ~10-20 % fewer 64 KiB frames/s through the tap; 128 small frames per
    // flush delivered ~14 % fewer 64 B frames/s than 64.
    private const int RxCopyBatch = 128;
    private const int RxFramesPerFlush = 64;
    private const int MaxRxFramesPerPass = 256;

    private const int TokenEvtchn = 0;
    private const int TokenTap = 1;
    private const int TokenStop = 2;
    private const int TokenWake = 3;
    // Frames another queue read from its tap fd for this guest queue (hash steering) wait here.
    private const int InboxBytes = 256 * 1024;

    private static readonly RingSlotLayout TxLayout = RingSlotLayout.Of<NetifTxRequest, NetifTxResponse>();
    private static readonly RingSlotLayout RxLayout = RingSlotLayout.Of<NetifRxRequest, NetifRxResponse>();

    private readonly int _index;
    private readonly ushort _domid;
    private readonly IGrantMapper _grants;
    private readonly IEventChannels _evtchn;
    private readonly uint _txPort, _rxPort;
    private readonly SharedMemory _txMemory, _rxMemory;
    private readonly BackRing _tx, _rx;
    private readonly ITapQueue _tap;
    private readonly NetFrontendFeatures _features;
    private readonly NetQueueOptions _options;
    private readonly MulticastFilter _multicast;
    private readonly VifShared _vif;
    private readonly EventFd _wake = EventFd.Create();
    private readonly Lock _inboxLock = new();
    private readonly RxFrameQueue _inbox;
    private bool _inboxSignalled;
    private readonly TxCredit _credit;
    private (ulong Bytes, ulong Microseconds)? _pendingRate;
    private int _rateChanged;
    private NetifTxRequest _heldRequest;
    private bool _held;
    private readonly Action<int, string> _onFatal;
    private readonly Action<int>? _onTapGone;
    // The tap was deleted under us: its fd is out of the epoll (it would report EPOLLERR forever) and
    // guest frames are dropped without a syscall until the device re-creates the tap.
    private bool _tapGone;
    private int _tapRestored;
    private readonly QueuePoll _poll = new();
    private readonly EventFd _stop = EventFd.Create();
    private readonly Thread _thread;
    private bool _fatal;

    // Guest TX batch state: packets are bump-allocated in one pinned arena, copy segments sorted by gref.
    private readonly byte[] _txArena;
    private readonly nint _txArenaAddress;
    private readonly TxPacket[] _txPackets;
    private readonly TxSlot[] _txSlots;
    private readonly GrantCopySegment[] _txSegments;
    private readonly GrantCopySegment[] _sortedSegments;
    private readonly ulong[] _sortKeys;
    private readonly int[] _txSegmentSlot;

    // Guest RX state.
    private readonly RxFrameQueue _rxQueue;
    // Frames we drop are read into this and truncated by tun (it copies what fits, consumes the
    // whole frame and reports its full length), so a dropped 64 KiB frame costs no 64 KiB copy.
    // Room for the virtio_net_hdr is required: tun refuses a read smaller than it (EINVAL).
    private readonly byte[] _dropScratch = new byte[64];
    private readonly RxSlot[] _rxSlots;
    private readonly GrantCopySegment[] _rxSegments = new GrantCopySegment[RxCopyBatch];
    private readonly int[] _rxSegmentSlot = new int[RxCopyBatch];
    private readonly int _maxSlotsPerFrame;
    private bool _rxStalled;

    public NetQueue(int index, ushort domid, IGrantMapper grants, IEventChannels evtchn, uint txPort, uint rxPort,
        SharedMemory txMemory, SharedMemory rxMemory, ITapQueue tap, NetFrontendFeatures features, NetQueueOptions options,
        VifShared vif, (ulong Bytes, ulong Microseconds)? rate, Action<int, string> onFatal, Action<int>? onTapGone = null)
    {
        _index = index;
        _domid = domid;
        _grants = grants;
        _evtchn = evtchn;
        _txPort = txPort;
        _rxPort = rxPort;
        _txMemory = txMemory;
        _rxMemory = rxMemory;
        _tap = tap;
        _features = features;
        _options = options;
        _vif = vif;
        _multicast = vif.Multicast;
        _credit = new TxCredit(rate, vif.ClockMicroseconds());
        _inbox = new RxFrameQueue(InboxBytes, MaxRxRecord, 512);
        _onFatal = onFatal;
        _onTapGone = onTapGone;

        // Attach where the shared indexes say (a reconnecting frontend may not start at 0), then refuse
        // a ring that already claims more requests than slots (xenvif_map_frontend_data_rings).
        _tx = BackRing.AttachAtSharedIndexes(txMemory, TxLayout);
        _rx = BackRing.AttachAtSharedIndexes(rxMemory, RxLayout);
        if (_tx.PollRequests(out _) == RingPoll.Faulted || _rx.PollRequests(out _) == RingPoll.Faulted)
        {
            // The field initializers already opened this queue's eventfds and epoll; a guest can
            // retry a bogus ring at will, so they are closed now, not whenever a finalizer runs
            // (found by fuzz/ net-tx: three descriptors per refused connect).
            _wake.Dispose();
            _stop.Dispose();
            _poll.Dispose();
            throw new InvalidDataException("a ring's req_prod is more than a ring size ahead of rsp_prod");
        }

        int batch = Math.Max(1, options.TxBatchPackets);
        _txArena = GC.AllocateArray<byte>(batch * 2048 + Math.Max(1, options.TxBatchLargeFrames) * MaxTxRecord, pinned: true);
        _txArenaAddress = Marshal.UnsafeAddrOfPinnedArrayElement(_txArena, 0);
        _txPackets = new TxPacket[batch];
        int slots = (int)_tx.Size + 1;
        _txSlots = new TxSlot[slots];
        _txSegments = new GrantCopySegment[slots];
        _sortedSegments = new GrantCopySegment[slots];
        _sortKeys = new ulong[slots];
        _txSegmentSlot = new int[slots];

        _rxQueue = new RxFrameQueue(options.RxQueueBytes, MaxRxRecord, 1024);
        _rxSlots = new RxSlot[RxCopyBatch + 3];
        _maxSlotsPerFrame = features.Sg ? (65535 + PageSize - 1) / PageSize + 1 : 1;

        _poll.Add(evtchn.PollFd, TokenEvtchn);
        _poll.Add(tap.PollFd, TokenTap);
        _poll.Add(_stop.Handle.Fd, TokenStop);
        _poll.Add(_wake.Handle.Fd, TokenWake);
        _thread = new Thread(Run) { IsBackground = true, Name = $"netback d{domid} q{index}" };
    }

    public NetQueueCounters Counters { get; } = new();

    public bool IsFatal => Volatile.Read(ref _fatal);

    /// <summary>Whether this queue saw its tap vanish and has not been told it is back.</summary>
    public bool IsTapGone => Volatile.Read(ref _tapGone);

    /// <summary>The device attached the tap fds to a new interface: poll the tap again (from any thread).</summary>
    public void TapRestored()
    {
        Volatile.Write(ref _tapRestored, 1);
        _wake.Signal();
    }

    // Called on the queue thread when a tap call answered EBADFD.
    private void TapGone()
    {
        if (_tapGone)
            return;
        Volatile.Write(ref _tapGone, true);
        _poll.Remove(_tap.PollFd);
        Counters.TapGone++;
        _onTapGone?.Invoke(_index);
    }

    public void Start() => _thread.Start();

    /// <summary>
    /// One guest-TX service call on the caller's thread, for a queue that was never started: the
    /// coverage-guided fuzz harness (fuzz/) drives the real request-chain validation synchronously.
    /// True when requests remain.
    /// </summary>
    internal bool ServiceTxOnCallerThread()
    {
        if ((_thread.ThreadState & System.Threading.ThreadState.Unstarted) == 0)
            throw new InvalidOperationException("the queue thread owns this queue");
        return ServiceTx();
    }

    /// <summary>One guest-RX service pass (tap reads, delivery, publication) on the caller's thread; as <see cref="ServiceTxOnCallerThread"/>.</summary>
    internal void ServiceRxOnCallerThread()
    {
        if ((_thread.ThreadState & System.Threading.ThreadState.Unstarted) == 0)
            throw new InvalidOperationException("the queue thread owns this queue");
        ServiceRx();
    }

    /// <summary>Stops the thread (bounded by the current pass) and waits for it.</summary>
    public void Stop()
    {
        _stop.Signal();
        if (_thread.IsAlive)
            _thread.Join();
    }

    public void Dispose()
    {
        Stop();
        try
        {
            _evtchn.Unbind(_txPort);
            if (_rxPort != _txPort)
                _evtchn.Unbind(_rxPort);
        }
        catch (XenNativeException)
        {
            // The domain is gone; its ports went with it.
        }
        _evtchn.Dispose();
        _txMemory.Dispose();
        _rxMemory.Dispose();
        _poll.Dispose();
        _stop.Dispose();
        _wake.Dispose();
    }

    private void Run()
    {
        long coalesceUs = (long)_options.RxCoalesceTime.TotalMicroseconds;
        try
        {
            // Refused, the coalescing waits just run up to 50 us late (the default slack).
            if (coalesceUs > 0)
                QueuePoll.TrySetThreadTimerSlack(1000);
            int timeout = 0; // look at the rings once at start: the frontend may have queued work before we bound
            while (true)
            {
                ulong ready = timeout != 0 && _tapPaused ? _poll.WaitMicroseconds(CoalesceWait(coalesceUs, timeout)) : _poll.Wait(timeout);
                if ((ready & (1UL << TokenStop)) != 0)
                    return;
                if ((ready & (1UL << TokenWake)) != 0)
                    _wake.TryConsume(out _);
                if (Interlocked.Exchange(ref _tapRestored, 0) != 0 && _tapGone)
                {
                    _poll.Add(_tap.PollFd, TokenTap);
                    Volatile.Write(ref _tapGone, false);
                }
                if (_fatal)
                {
                    DrainWhileDisabled();
                    timeout = -1;
                    continue;
                }
                // Take every pending port now (masking them); unmask only after the rings were served, so an
                // event storm costs one pass per drain, never a busy loop (XSA-332).
                uint p0 = uint.MaxValue, p1 = uint.MaxValue;
                while (_evtchn.TryGetPending(out uint port))
                {
                    if (p0 == uint.MaxValue) p0 = port;
                    else if (port != p0) p1 = port;
                }
                bool moreTx = ServiceTx();
                ServiceRx();
                if (p0 != uint.MaxValue) _evtchn.Unmask(p0);
                if (p1 != uint.MaxValue) _evtchn.Unmask(p1);
                if (_fatal)
                {
                    CoalesceRx(false);
                    timeout = -1;
                    continue;
                }
                // Only a tap that ran dry waits for the timer; one that still has frames (the pass
                // ran out of budget) is read again at once.
                CoalesceRx(coalesceUs > 0 && _tapFramesRead > 0 && _tapRanDry);
                if (!moreTx && !_held && _tx.FinalCheckForRequests() != RingPoll.Idle)
                    moreTx = true;
                timeout = moreTx || _rxRecheck ? 0 : SleepTimeout();
                Volatile.Write(ref Counters.ThreadAllocatedBytes, GC.GetAllocatedBytesForCurrentThread());
                Volatile.Write(ref Counters.Passes, Counters.Passes + 1);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug or a vanished mapping must not take the whole backend process down with it.
            Fatal("internal error: " + e.Message);
        }
    }

    // Guest-RX coalescing (NetQueueOptions.RxCoalesceTime): while frames keep coming, the tap fd is
    // paused in the epoll and read again on a timer instead of on every arrival.
    private bool _tapPaused;
    private int _tapFramesRead;
    private bool _tapRanDry;

    private void CoalesceRx(bool frames)
    {
        if (_tapGone)
        {
            _tapPaused = false; // TapGone took it out of the epoll altogether
            return;
        }
        if (frames == _tapPaused)
            return;
        if (frames)
            _poll.Pause(_tap.PollFd, TokenTap);
        else
            _poll.Resume(_tap.PollFd, TokenTap);
        _tapPaused = frames;
    }

    // The coalescing wait, shortened by whatever else is due sooner (stall check, rate credit).
    private static long CoalesceWait(long coalesceUs, int timeoutMs) =>
        timeoutMs < 0 ? coalesceUs : Math.Min(coalesceUs, timeoutMs * 1000L);

    /// <summary>A changed <c>rate</c> key: applied by the queue thread before its next guest-TX pass.</summary>
    public void SetRate((ulong Bytes, ulong Microseconds)? rate)
    {
        lock (_inboxLock)
            _pendingRate = rate;
        Volatile.Write(ref _rateChanged, 1);
        _wake.Signal();
    }

    /// <summary>Makes the queue thread look at its rings now (a setting changed).</summary>
    public void Wake() => _wake.Signal();

    /// <summary>
    /// Takes a frame another queue read for this guest queue (hash steering), from that queue's
    /// thread. Capped like the rx queue; false when full (the caller counts a drop).
    /// </summary>
    public bool Handoff(ReadOnlySpan<byte> record, long arrival)
    {
        bool signal;
        lock (_inboxLock)
        {
            if (!_inbox.TryReserve(out Span<byte> space, out int offset))
                return false;
            record.CopyTo(space);
            _inbox.Commit(offset, record.Length, arrival);
            signal = !_inboxSignalled;
            Volatile.Write(ref _inboxSignalled, true);
        }
        if (signal)
            _wake.Signal();
        return true;
    }

    // Moves handed-off frames into our own rx queue (one more copy, only for frames the kernel put on
    // another queue's fd than the guest's hash mapping wants).
    private void DrainInbox()
    {
        // A non-empty inbox always has _inboxSignalled set (both change under the lock), and a
        // handoff that this unlocked read misses has rung _wake, so the next pass drains it: every
        // pass without steering skips the lock.
        if (!Volatile.Read(ref _inboxSignalled))
            return;
        lock (_inboxLock)
        {
            _inboxSignalled = false;
            while (_inbox.TryPeek(out Span<byte> record, out _, out long arrival))
            {
                if (!_rxStalled && _rxQueue.TryReserve(out Span<byte> space, out int offset))
                {
                    record.CopyTo(space);
                    _rxQueue.Commit(offset, record.Length, arrival);
                }
                else
                {
                    Counters.RxDrops++;
                }
                _inbox.Pop();
            }
        }
    }

    private int SleepTimeout()
    {
        int rx = RxTimeout();
        int credit = CreditTimeout();
        if (rx < 0)
            return credit;
        return credit < 0 ? rx : Math.Min(rx, credit);
    }

    private int CreditTimeout()
    {
        if (!_held)
            return -1;
        long due = _credit.RetryAt - _vif.ClockMicroseconds();
        return due <= 0 ? 0 : (int)Math.Min((due + 999) / 1000, int.MaxValue);
    }

    private void Fatal(string message)
    {
        if (_fatal)
            return;
        Volatile.Write(ref _fatal, true);
        Counters.FatalResets++;
        _onFatal(_index, message);
    }

    // A disabled queue (Linux: vif->disabled) keeps its ports masked and swallows tap frames, so
    // neither side can make it spin until the toolstack tears the device down.
    private void DrainWhileDisabled()
    {
        for (int i = 0; i < MaxRxFramesPerPass && !_tapGone; i++)
        {
            TapIoStatus status = _tap.Read(_dropScratch, out _);
            if (status == TapIoStatus.Gone)
                TapGone();
            if (status != TapIoStatus.Ok)
                break;
            Counters.RxDrops++;
        }
        while (_evtchn.TryGetPending(out _))
        {
        }
    }

    // ---------------------------------------------------------------- guest TX (guest -> tap)

    private struct TxSlot
    {
        public ushort Id;
        public short Status;
    }

    private struct TxPacket
    {
        public int ArenaOffset;
        public int Length;
        public ushort Flags;
        public byte GsoType;
        public ushort GsoSize;
        public bool Failed;
    }

    private int _slotCount, _packetCount, _segmentCount, _arenaUsed;
    private uint _txUnpushed, _rxUnpushed;

    /// <summary>Serves up to a few batches; true when requests remain (call again before sleeping).</summary>
    private bool ServiceTx()
    {
        if (Interlocked.Exchange(ref _rateChanged, 0) != 0)
        {
            (ulong, ulong)? rate;
            lock (_inboxLock)
                rate = _pendingRate;
            _credit.SetRate(rate, _vif.ClockMicroseconds());
        }
        for (int pass = 0; pass < 4; pass++)
        {
            _slotCount = _packetCount = _segmentCount = _arenaUsed = 0;
            bool more = BuildTxBatch();
            FlushTxBatch();
            if (_fatal || !more)
            {
                PushTxResponses();
                return false;
            }
        }
        PushTxResponses();
        return true;
    }

    /// <summary>
    /// TX responses are published once per service pass (up to 4 batches), not per batch: on the
    /// bench VM a notify that wakes the guest cost ~9 us, 14 % of the queue thread at 64 B through a
    /// tap. Responses never wait past the pass, so a guest waiting for TX slots gets them before the
    /// worker can sleep.
    /// </summary>
    private void PushTxResponses() => Publish(_tx, ref _txUnpushed, _txPort);

    /// <summary>Pushes the responses written on <paramref name="ring"/> and notifies the frontend if it asked.</summary>
    private void Publish(BackRing ring, ref uint unpushed, uint port)
    {
        // Nothing new: no store to the shared ring (the guest polls that cache line).
        if (unpushed == 0)
            return;
        unpushed = 0;
        if (ring.PushResponsesAndCheckNotify())
            _evtchn.Notify(port);
    }

    /// <summary>Consumes and validates requests into the batch; true when it stopped because the batch was full.</summary>
    private bool BuildTxBatch()
    {
        while (_packetCount < _txPackets.Length && _arenaUsed + MaxTxRecord <= _txArena.Length)
        {
            RingPoll poll = _tx.PollRequests(out uint work);
            if (poll == RingPoll.Faulted)
            {
                Fatal("Impossible number of requests (req_prod - rsp_prod > ring size)");
                return false;
            }
            NetifTxRequest first;
            if (_held)
            {
                // Consumed in an earlier pass and deferred for credit; its slots stay unanswered meanwhile.
                first = _heldRequest;
                _held = false;
            }
            else
            {
                if (work == 0)
                    return false;
                if (!Consume(out first))
                    return false;
                work--;
            }
            // Credit-based scheduling (tx_credit_exceeded): a packet that does not fit waits, whole.
            if (!_credit.IsUnlimited && !_credit.TryConsume(first.Size, _vif.ClockMicroseconds()))
            {
                _heldRequest = first;
                _held = true;
                return false;
            }
            if (!TryTakeTxPacket(ref work, first))
                return false;
        }
        return true;
    }

    private bool Consume(out NetifTxRequest request)
    {
        // RING_COPY_REQUEST: the only read of the slot (XSA-155); everything below uses the copy.
        if (_tx.TryConsumeRequest(out request) == RingRead.Item)
            return true;
        Fatal("tx ring request vanished while consuming");
        return false;
    }

    private int AddSlot(ushort id, short status)
    {
        _txSlots[_slotCount] = new TxSlot { Id = id, Status = status };
        return _slotCount++;
    }

    /// <summary>One packet (xenvif_tx_build_gops for one request chain). False: stop (fatal).</summary>
    private bool TryTakeTxPacket(ref uint work, NetifTxRequest first)
    {
        int firstSlot = AddSlot(first.Id, NetifRsp.Okay);

        NetifExtraInfo gso = default, mcastAdd = default, mcastDel = default;
        if ((first.Flags & NetTxFlags.ExtraInfo) != 0)
        {
            byte flags;
            do
            {
                if (work == 0)
                {
                    Fatal("Missing extra info (extra_info flag set but no slot follows)");
                    return false;
                }
                if (!Consume(out NetifTxRequest raw))
                    return false;
                work--;
                AddSlot(0, NetifRsp.Null);
                NetifExtraInfo extra = Unsafe.As<NetifTxRequest, NetifExtraInfo>(ref raw);
                if (extra.Type == NetifExtraType.None || extra.Type >= NetifExtraType.Max)
                {
                    Fatal($"Invalid extra type: {extra.Type}");
                    return false;
                }
                switch (extra.Type)
                {
                    case NetifExtraType.Gso: gso = extra; break;
                    case NetifExtraType.McastAdd: mcastAdd = extra; break;
                    case NetifExtraType.McastDel: mcastDel = extra; break;
                }
                flags = extra.Flags;
            }
            while ((flags & NetifExtraFlags.More) != 0);
        }

        // Multicast control travels in a dummy request: answered at once, never a packet (netback does the same).
        // Like netback (anchors 4.1 row 6: `continue` before xenvif_count_requests) its NETTXF_more_data
        // links nothing; the next slot is read as a new packet's first slot.
        if (mcastAdd.Type != 0)
        {
            bool ok = _multicast.Add(MulticastFilter.Pack(mcastAdd.McastAddr));
            _txSlots[firstSlot].Status = ok ? NetifRsp.Okay : NetifRsp.Error;
            return true;
        }
        if (mcastDel.Type != 0)
        {
            _multicast.Remove(MulticastFilter.Pack(mcastDel.McastAddr));
            return true;
        }

        // Walk the rest of the chain (xenvif_count_requests): consume every slot even when dropping, so the
        // ring stays in step; only impossible chains are fatal.
        int firstSize = first.Size;
        bool drop = false;
        int chainStart = _slotCount;
        int slots = 0;
        bool moreData = (first.Flags & NetTxFlags.MoreData) != 0;
        Span<NetifTxRequest> frags = stackalloc NetifTxRequest[LegacySlotsMax];
        while (moreData)
        {
            if (slots >= work)
            {
                Fatal($"Asked for {slots + 1} slots but only {work} are posted");
                return false;
            }
            if (slots >= FatalSlots)
            {
                Fatal($"Malicious frontend using {slots + 1} slots, threshold {FatalSlots}");
                return false;
            }
            if (slots >= LegacySlotsMax)
                drop = true;
            if (!Consume(out NetifTxRequest frag))
                return false;
            AddSlot(frag.Id, NetifRsp.Okay);
            if (!drop && frag.Size > firstSize)
                drop = true; // a >= 64 KiB frame overflowed the u16 total: buggy, not malicious
            firstSize -= frag.Size;
            if (frag.Offset + frag.Size > PageSize)
            {
                Fatal($"Cross page boundary, txp->offset: {frag.Offset}, size: {frag.Size}");
                return false;
            }
            moreData = (frag.Flags & NetTxFlags.MoreData) != 0;
            if (!drop)
                frags[slots] = frag;
            slots++;
        }
        work -= (uint)slots;
        if (drop)
        {
            DropTxSlots(firstSlot, _slotCount);
            return true;
        }
        // Netback checks the first slot's own share (total minus the fragments) against ETH_HLEN,
        // which also refuses every packet whose total is below 14 bytes.
        if (firstSize < PacketHeaders.EthernetHeaderLength)
        {
            DropTxSlots(firstSlot, _slotCount);
            return true;
        }
        if (first.Offset + firstSize > PageSize)
        {
            Fatal($"txreq.offset: {first.Offset}, size: {firstSize}, end: {first.Offset + firstSize}");
            return false;
        }
        if (gso.Type != 0 && (gso.GsoSize == 0 || (gso.GsoType != NetifGsoType.TcpV4 && gso.GsoType != NetifGsoType.TcpV6)))
        {
            Fatal($"Bad GSO extra: size {gso.GsoSize}, type {gso.GsoType}");
            return false;
        }

        // The whole frame is copied into one linear buffer, so protocol headers can never end up split
        // between a linear part and fragments (the XSA-423/432 class of bugs cannot arise).
        int offset = _arenaUsed;
        int position = offset + HeaderLength;
        AddSegment(first.Gref, first.Offset, position, firstSize, firstSlot);
        position += firstSize;
        for (int i = 0; i < slots; i++)
        {
            ref readonly NetifTxRequest frag = ref frags[i];
            // Zero-length fragments are answered OKAY and never copied (XSA-448).
            if (frag.Size == 0)
                continue;
            AddSegment(frag.Gref, frag.Offset, position, frag.Size, chainStart + i);
            position += frag.Size;
        }
        _txPackets[_packetCount++] = new TxPacket
        {
            ArenaOffset = offset,
            Length = first.Size,
            Flags = first.Flags,
            GsoType = gso.Type != 0 ? gso.GsoType : NetifGsoType.None,
            GsoSize = gso.Type != 0 ? gso.GsoSize : (ushort)0,
        };
        _arenaUsed = (position + 63) & ~63;
        return true;
    }

    private void AddSegment(uint gref, ushort guestOffset, int arenaOffset, int length, int slot)
    {
        int i = _segmentCount++;
        _txSegments[i] = GrantCopySegment.FromGuest(_domid, gref, guestOffset, _txArenaAddress + arenaOffset, (ushort)length);
        _txSegmentSlot[i] = slot;
        // Sorted by gref so Xen can reuse the acquired source page across consecutive ops.
        _sortKeys[i] = ((ulong)gref << 32) | (uint)i;
    }

    private void DropTxSlots(int from, int to)
    {
        for (int i = from; i < to; i++)
        {
            if (_txSlots[i].Status != NetifRsp.Null)
                _txSlots[i].Status = NetifRsp.Error;
        }
        Counters.TxDrops++;
    }

    private void FlushTxBatch()
    {
        int n = _segmentCount;
        if (n > 0)
        {
            Array.Sort(_sortKeys, 0, n);
            for (int i = 0; i < n; i++)
                _sortedSegments[i] = _txSegments[(int)(uint)_sortKeys[i]];
            _grants.Copy(_sortedSegments.AsSpan(0, n));
            for (int i = 0; i < n; i++)
            {
                if (_sortedSegments[i].Status == GrantStatus.Okay)
                    continue;
                int original = (int)(uint)_sortKeys[i];
                _txSlots[_txSegmentSlot[original]].Status = NetifRsp.Error;
                MarkPacketFailed(_txSegments[original].DestVirt);
            }
        }

        for (int p = 0; p < _packetCount; p++)
        {
            ref TxPacket packet = ref _txPackets[p];
            if (packet.Failed)
            {
                Counters.TxErrors++;
                continue;
            }
            SubmitToTap(ref packet);
        }

        if (_slotCount == 0)
            return;
        // Every consumed slot gets a response in consumption order; extra-info slots get NETIF_RSP_NULL.
        for (int i = 0; i < _slotCount; i++)
            _tx.PutResponse(new NetifTxResponse { Id = _txSlots[i].Id, Status = _txSlots[i].Status });
        // Half a ring unanswered: hand the guest its slots back now, so it can refill while we work.
        _txUnpushed += (uint)_slotCount;
        if (_txUnpushed >= _tx.Size / 2)
            PushTxResponses();
    }

    private void MarkPacketFailed(nint destination)
    {
        long offset = destination - _txArenaAddress;
        for (int p = 0; p < _packetCount; p++)
        {
            ref TxPacket packet = ref _txPackets[p];
            if (offset >= packet.ArenaOffset && offset < packet.ArenaOffset + HeaderLength + packet.Length)
            {
                packet.Failed = true;
                return;
            }
        }
    }

    private void SubmitToTap(ref TxPacket packet)
    {
        Span<byte> record = _txArena.AsSpan(packet.ArenaOffset, HeaderLength + packet.Length);
        Span<byte> frame = record[HeaderLength..];
        var header = default(VirtioNetHeader);
        bool csumBlank = (packet.Flags & NetTxFlags.CsumBlank) != 0;
        if (csumBlank || packet.GsoType != NetifGsoType.None)
        {
            // checksum_setup: a frame whose headers cannot carry a partial checksum is dropped silently
            // (its slots are already answered OKAY), as netback does.
            if (!PacketHeaders.TryLocateL4(frame, out L4Location l4)
                || (packet.GsoType != NetifGsoType.None && (l4.Protocol != L4Location.Tcp || l4.IsIpv6 != (packet.GsoType == NetifGsoType.TcpV6))))
            {
                Counters.TxDrops++;
                return;
            }
            // GSO without csum_blank carries a full checksum; segmentation needs the pseudo-header sum.
            if (!csumBlank)
                PacketHeaders.WritePseudoHeaderChecksum(frame, l4);
            header.Flags = VirtioNetHeader.FlagNeedsCsum;
            header.CsumStart = (ushort)l4.L4Offset;
            header.CsumOffset = (ushort)l4.CsumOffset;
            if (packet.GsoType != NetifGsoType.None)
            {
                header.GsoType = packet.GsoType == NetifGsoType.TcpV4 ? VirtioNetHeader.GsoTcpV4 : VirtioNetHeader.GsoTcpV6;
                header.GsoSize = packet.GsoSize;
                header.HdrLen = (ushort)(l4.L4Offset + l4.L4HeaderLength);
            }
        }
        else if ((packet.Flags & NetTxFlags.DataValidated) != 0)
        {
            header.Flags = VirtioNetHeader.FlagDataValid;
        }
        header.WriteTo(record);
        // No tap: the frame is answered OKAY and dropped, as netback drops frames of a vif whose
        // carrier is off; nothing is queued for later.
        TapIoStatus status = _tapGone ? TapIoStatus.Gone : _tap.Write(record);
        if (status == TapIoStatus.Ok)
        {
            Counters.TxPackets++;
            Counters.TxBytes += packet.Length;
        }
        else
        {
            Counters.TxDrops++;
            if (status == TapIoStatus.Gone)
                TapGone();
        }
    }

    // ---------------------------------------------------------------- guest RX (tap -> guest)

    private struct RxSlot
    {
        public ushort Id;
        public ushort Flags;
        public short Status;
        public bool IsExtra;
        public NetifExtraInfo Extra;
    }

    private int _rxSlotCount, _rxSegmentCount, _rxFrameCount;
    // The guest posted rx buffers while this pass asked for a kick: serve again before sleeping.
    private bool _rxRecheck;

    private void ServiceRx()
    {
        _tapFramesRead = 0;
        _tapRanDry = false;
        _rxRecheck = false;
        DrainInbox();
        // Read and deliver in turns within one budget of tap reads: a full rx queue is first
        // emptied into whatever buffers the guest has posted, and frames are dropped only when the
        // guest has taken nothing (it is not keeping up). Reading the whole budget before delivering
        // dropped frames the guest had room for: with 64 KiB frames the 512 KiB queue holds 7 of them.
        int budget = MaxRxFramesPerPass;
        while (true)
        {
            bool full = ReadFromTap(ref budget, mayDrop: false);
            bool delivered = DeliverToGuest();
            if (!full || budget == 0 || _tapGone || _fatal)
                return;
            if (!delivered)
            {
                // The tap is not backed up into the host stack: what the guest cannot take is dropped.
                ReadFromTap(ref budget, mayDrop: true);
                return;
            }
        }
    }

    /// <summary>
    /// Reads tap frames into the rx queue while <paramref name="budget"/> lasts. True when it stopped
    /// because the queue was full and dropping was not allowed (the caller delivers, then reads on).
    /// </summary>
    private bool ReadFromTap(ref int budget, bool mayDrop)
    {
        long now = Environment.TickCount64;
        NetQueue[] queues = _vif.Queues;
        // With a hash algorithm set the guest chooses the queue of every flow (xenvif_select_queue);
        // the kernel spread frames over our tap fds by its own hash, so some must change queue.
        RxHashSettings hash = _vif.Hash;
        bool steer = queues.Length > 1 && hash.Algorithm != NetifCtrlHashAlgorithm.None;
        for (; budget > 0 && !_tapGone; budget--)
        {
            if (!_rxStalled && _rxQueue.TryReserve(out Span<byte> space, out int offset))
            {
                TapIoStatus status = _tap.Read(space, out int length);
                if (status == TapIoStatus.WouldBlock)
                {
                    _tapRanDry = true;
                    return false;
                }
                if (status != TapIoStatus.Ok)
                {
                    if (status == TapIoStatus.Gone)
                        TapGone();
                    else
                        Counters.RxErrors++;
                    return false;
                }
                _tapFramesRead++;
                // Longer than a record: tun truncated it (a GSO frame past 64 KiB, as BIG TCP or a
                // raised gso_max_size can build). No netif frame can carry it: drop, as for a runt.
                if (length > space.Length || length < HeaderLength + PacketHeaders.EthernetHeaderLength || !WantedByGuest(space[HeaderLength..length]))
                {
                    Counters.RxDrops++;
                    continue;
                }
                if (steer)
                {
                    bool hashed = RxHash.TryHash(hash, space[HeaderLength..length], out uint value, out _);
                    int target = RxHash.SelectQueue(hash, hashed, value, queues.Length);
                    if (target != _index)
                    {
                        if (!queues[target].Handoff(space[..length], now))
                            Counters.RxDrops++;
                        continue;
                    }
                }
                _rxQueue.Commit(offset, length, now);
            }
            else
            {
                if (!_rxStalled && !mayDrop)
                    return true;
                // Queue full or guest stalled: drop (and count) instead of letting the tap back up.
                TapIoStatus status = _tap.Read(_dropScratch, out _);
                if (status == TapIoStatus.Gone)
                    TapGone();
                if (status != TapIoStatus.Ok)
                    return false;
                _tapFramesRead++;
                Counters.RxDrops++;
            }
        }
        return false;
    }

    private bool WantedByGuest(ReadOnlySpan<byte> frame)
    {
        if (!_multicast.Enabled || (frame[0] & 1) == 0)
            return true;
        ulong dst = MulticastFilter.Pack(frame);
        return dst == 0xFFFF_FFFF_FFFFUL || _multicast.Contains(dst);
    }

    private int RxTimeout()
    {
        if (_rxQueue.Count == 0 || !_rxQueue.TryPeek(out _, out _, out long arrival))
            return -1;
        long due = arrival + (long)_options.RxStallTimeout.TotalMilliseconds - Environment.TickCount64;
        return (int)Math.Clamp(due, 0, int.MaxValue);
    }

    /// <summary>Moves queued frames into posted rx buffers; true when at least one frame was delivered.</summary>
    private bool DeliverToGuest()
    {
        RingPoll poll = _rx.PollRequests(out uint available);
        if (poll == RingPoll.Faulted)
        {
            Fatal("Impossible number of rx requests (req_prod - rsp_prod > ring size)");
            return false;
        }
        if (_rxStalled && available >= _maxSlotsPerFrame)
            _rxStalled = false;

        _rxSlotCount = _rxSegmentCount = _rxFrameCount = 0;
        bool delivered = false;
        RxHashSettings hashSettings = _vif.Hash;
        while (_rxQueue.TryPeek(out Span<byte> record, out nint address, out long arrival))
        {
            VirtioNetHeader header = VirtioNetHeader.ReadFrom(record);
            Span<byte> frame = record[HeaderLength..];
            if (!PrepareRxFrame(frame, header, out ushort flags, out NetifExtraInfo gso))
            {
                Counters.RxDrops++;
                _rxQueue.Pop();
                continue;
            }
            // The hash extra tells the guest what we steered by (netif.h XEN_NETIF_EXTRA_TYPE_HASH).
            NetifExtraInfo hashExtra = default;
            if (hashSettings.IsHashing && RxHash.TryHash(hashSettings, frame, out uint hashValue, out byte hashType))
            {
                hashExtra = new NetifExtraInfo
                {
                    Type = NetifExtraType.Hash,
                    HashType = hashType,
                    HashAlgorithm = NetifCtrlHashAlgorithm.Toeplitz,
                    HashValue = hashValue,
                };
            }
            int extras = (gso.Type != 0 ? 1 : 0) + (hashExtra.Type != 0 ? 1 : 0);
            int dataSlots = (frame.Length + PageSize - 1) / PageSize;
            int needed = dataSlots + extras;
            if (needed > available)
            {
                if (Environment.TickCount64 - arrival >= (long)_options.RxStallTimeout.TotalMilliseconds)
                {
                    // Not enough slots for this frame for too long: stalled. Drop what is queued now and drop
                    // new frames on arrival until buffers for a maximal frame are posted.
                    _rxStalled = true;
                    Counters.RxStalls++;
                    while (_rxQueue.TryPeek(out _, out _, out _))
                    {
                        _rxQueue.Pop();
                        Counters.RxDrops++;
                    }
                }
                break;
            }
            if (_rxSegmentCount + dataSlots > RxCopyBatch || _rxSlotCount + needed > _rxSlots.Length || _rxFrameCount == RxFramesPerFlush)
            {
                FlushRx(endOfPass: false);
                if (_rxSegmentCount + dataSlots > RxCopyBatch)
                    break; // cannot happen: a frame needs at most 17 segments
            }
            // Responses go in the slots of the requests they consume, in order (netfront ignores ids):
            // first data slot, then the GSO extra, then the remaining data slots.
            int pos = 0;
            for (int s = 0; s < dataSlots; s++)
            {
                if (_rx.TryConsumeRequest(out NetifRxRequest req) != RingRead.Item)
                {
                    Fatal("rx ring request vanished while consuming");
                    return false;
                }
                int chunk = Math.Min(PageSize, frame.Length - pos);
                int slot = _rxSlotCount++;
                ushort slotFlags = s == 0 ? flags : (ushort)0;
                if (s < dataSlots - 1)
                    slotFlags |= NetRxFlags.MoreData;
                if (s == 0 && extras != 0)
                    slotFlags |= NetRxFlags.ExtraInfo;
                _rxSlots[slot] = new RxSlot { Id = req.Id, Flags = slotFlags, Status = (short)chunk };
                _rxSegments[_rxSegmentCount] = GrantCopySegment.ToGuest(address + HeaderLength + pos, _domid, req.Gref, 0, (ushort)chunk);
                _rxSegmentSlot[_rxSegmentCount++] = slot;
                pos += chunk;
                if (s == 0 && extras != 0)
                {
                    // Each extra occupies the slot of a consumed request; FLAG_MORE chains them (GSO first).
                    if (gso.Type != 0)
                    {
                        gso.Flags = hashExtra.Type != 0 ? NetifExtraFlags.More : (byte)0;
                        if (!PutRxExtra(gso))
                            return false;
                    }
                    if (hashExtra.Type != 0 && !PutRxExtra(hashExtra))
                        return false;
                }
            }
            available -= (uint)needed;
            _rxFrameCount++;
            Counters.RxPackets++;
            Counters.RxBytes += frame.Length;
            delivered = true;
            // The copy must run before the arena space is reused; FlushRx below or at the next batch
            // boundary does it before any further tap read.
            _rxQueue.Pop();
        }
        FlushRx(endOfPass: true);
        if (_rxQueue.Count > 0 || _rxStalled)
        {
            // Frames wait for slots: a kick at the guest's next post, even if some buffers are
            // already there (too few for the head frame). A post that raced with this is looked at
            // in another pass at once.
            if (_rx.RequestKickOnNextRequest())
                _rxRecheck = true;
        }
        else if (!delivered)
        {
            _rx.FinalCheckForRequests();
        }
        return delivered;
    }

    private bool PutRxExtra(in NetifExtraInfo extra)
    {
        if (_rx.TryConsumeRequest(out NetifRxRequest request) != RingRead.Item)
        {
            Fatal("rx ring request vanished while consuming");
            return false;
        }
        _rxSlots[_rxSlotCount++] = new RxSlot { Id = request.Id, IsExtra = true, Extra = extra };
        return true;
    }

    /// <summary>Maps the tap's virtio_net_hdr onto NETRXF flags and a GSO extra the frontend accepts.</summary>
    private bool PrepareRxFrame(Span<byte> frame, in VirtioNetHeader header, out ushort flags, out NetifExtraInfo gso)
    {
        flags = 0;
        gso = default;
        if (frame.Length > PageSize && !_features.Sg)
            return false;
        if (frame.Length > 0xFFFF + 64)
            return false;
        if ((header.Flags & VirtioNetHeader.FlagNeedsCsum) != 0)
        {
            int start = header.CsumStart, offset = header.CsumOffset;
            if (start + offset + 2 > frame.Length)
                return false;
            bool ipv6 = frame.Length >= 14 && BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == 0x86DD;
            bool canPass = ipv6 ? _features.Ipv6CsumOffload : _features.Ipv4CsumOffload;
            if (canPass)
            {
                flags = NetRxFlags.CsumBlank | NetRxFlags.DataValidated;
            }
            else
            {
                InternetChecksum.Complete(frame, start, offset, udp: offset == 6);
                flags = NetRxFlags.DataValidated;
            }
        }
        else if ((header.Flags & VirtioNetHeader.FlagDataValid) != 0)
        {
            flags = NetRxFlags.DataValidated;
        }
        byte gsoType = (byte)(header.GsoType & ~VirtioNetHeader.GsoEcn);
        if (gsoType != VirtioNetHeader.GsoNone)
        {
            bool v4 = gsoType == VirtioNetHeader.GsoTcpV4 && _features.GsoTcpV4;
            bool v6 = gsoType == VirtioNetHeader.GsoTcpV6 && _features.GsoTcpV6;
            if (!(v4 || v6) || header.GsoSize == 0 || (flags & NetRxFlags.CsumBlank) == 0)
                return false;
            gso = new NetifExtraInfo
            {
                Type = NetifExtraType.Gso,
                GsoSize = header.GsoSize,
                GsoType = v4 ? NetifGsoType.TcpV4 : NetifGsoType.TcpV6,
            };
        }
        return true;
    }

    /// <summary>
    /// Copies the batch into the guest and writes its responses. They are published (and the guest
    /// notified) at the end of a delivery pass or once half a ring waits, not after every batch: as
    /// on the TX side, each notify that wakes the guest costs the queue thread several us here.
    /// </summary>
    private void FlushRx(bool endOfPass)
    {
        if (_rxSegmentCount > 0)
        {
            _grants.Copy(_rxSegments.AsSpan(0, _rxSegmentCount));
            for (int i = 0; i < _rxSegmentCount; i++)
            {
                if (_rxSegments[i].Status != GrantStatus.Okay)
                {
                    _rxSlots[_rxSegmentSlot[i]].Status = NetifRsp.Error;
                    Counters.RxErrors++;
                }
            }
        }
        for (int i = 0; i < _rxSlotCount; i++)
        {
            ref RxSlot slot = ref _rxSlots[i];
            if (slot.IsExtra)
                _rx.PutResponse(slot.Extra);
            else
                _rx.PutResponse(new NetifRxResponse { Id = slot.Id, Offset = 0, Flags = slot.Flags, Status = slot.Status });
        }
        _rxUnpushed += (uint)_rxSlotCount;
        _rxSlotCount = _rxSegmentCount = _rxFrameCount = 0;
        if (endOfPass || _rxUnpushed >= _rx.Size / 2)
            Publish(_rx, ref _rxUnpushed, _rxPort);
    }
}
