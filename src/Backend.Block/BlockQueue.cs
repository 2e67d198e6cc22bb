using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using XenBackends.Native;
using XenBackends.Native.IO;
using XenBackends.Native.Linux;
using XenBackends.Rings;
using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block;

/// <summary>
/// One blkif ring and everything that serves it: a dedicated thread that sleeps in one epoll on the
/// event channel, the I/O engine's completions and a stop eventfd; per-slot request state, bounce
/// pages and iovec arrays allocated once here so the steady state allocates nothing. The whole data
/// path reads top to bottom in this file (the shape of QEMU's hw/block/dataplane/xen-block.c):
/// wake, reap completions, drain the ring (copy, validate, batch the grant copies, submit), answer,
/// re-arm, unmask.
/// </summary>
public sealed class BlockQueue : IDisposable
{
    private const ulong TokenEventChannel = 1;
    private const ulong TokenCompletions = 2;
    private const ulong TokenStop = 3;
    private const int PageSize = 4096;
    private const int IovecSize = 16;
    private const int SectorsPerPage = PageSize / 512;
    /// <summary>Linux errno: the filesystem has no such operation (fallocate modes, fsync on some FUSE).</summary>
    private const int EOpNotSupp = 95;
    // Linux errnos meaning the file's storage is no longer there (a FUSE daemon or network
    // filesystem gone, a device removed): every request will fail, so the report says so.
    private const int ENxio = 6, ENoDev = 19, ENotConn = 107, EStale = 116;
    /// <summary>Seconds between two reports of failing image I/O on one queue.</summary>
    private const int IoErrorReportInterval = 5;

    private enum Stage : byte
    {
        Free,
        /// <summary>Write data is in this drain's grant-copy batch.</summary>
        AwaitCopy,
        /// <summary>A barrier waiting for everything submitted before it to finish.</summary>
        AwaitBarrier,
        /// <summary>FLUSH_DISKCACHE with data: the flush runs first, then the write.</summary>
        PreFlush,
        /// <summary>The read, write or discard itself is in the engine.</summary>
        Transfer,
        /// <summary>WRITE_BARRIER: the write finished, the flush that makes it durable runs.</summary>
        PostFlush,
    }

    /// <summary>What one consumed request needs until its response is written.</summary>
    private struct Slot
    {
        public ulong Id;
        /// <summary>
        /// The operation the response carries: the request's, or for an indirect request its
        /// indirect_op, as Linux blkback answers and as Linux blkfront checks (it disables the
        /// disk on "response has wrong operation (6 instead of 1)", seen on real Xen).
        /// </summary>
        public byte Operation;
        /// <summary>The operation to perform: indirect requests resolve to their indirect_op.</summary>
        public byte Op;
        public Stage Stage;
        public bool CopyFailed;
        public bool Secure;
        public int NrSegments;
        public long Sector;
        public long NrSectors;
        public int Pages;
        public long Start;
        /// <summary>The guest's pages on the mapped path: a value, so mapping allocates nothing.</summary>
        public GrantPages Mapping;
        /// <summary>The data was grant-copied straight to or from the image mapping: the copy was the transfer.</summary>
        public bool ImageMapped;
    }

    private readonly ushort _domid;
    private readonly BackRing _ring;
    private readonly BlkifAbi _abi;
    private readonly SharedMemory _ringMemory;
    private readonly IEventChannels _events;
    private readonly uint _port;
    private readonly IGrantMapper _grants;
    private readonly BlockImage _image;
    private readonly BlockStatistics _stats;
    private readonly BlockDataPath _dataPath;
    private readonly int _maxIndirectSegments;
    private readonly int _maxSegments;
    // Shortened by RequestStop when nobody is left to answer; read by the worker after the stop signal.
    private TimeSpan _drainTimeout;
    private readonly Action<BlockQueue, string> _fatal;
    private readonly Action<string> _withdrawFeature;
    private readonly Action<BlockQueue, string> _ioError;
    /// <summary>When the last I/O error was reported (0: never), and how many failed since without a report.</summary>
    private long _ioErrorReportedAt;
    private long _ioErrorsUnreported;
    /// <summary>The disk's QoS (shared by its queues); null when unlimited.</summary>
    private readonly IoRateLimiter? _limiter;
    private long _throttledUntil;
    private readonly IIoEngine _io;
    /// <summary>The engine finishes requests inside TryEnqueue and never signals its fd (null image, inline engine).</summary>
    private readonly bool _inlineIo;
    private readonly EpollSet _epoll;
    private readonly EventFd _stop;
    private readonly Thread _thread;

    private readonly Slot[] _slots;
    private readonly int[] _freeSlots;
    private int _freeSlotCount;
    /// <summary>
    /// Every consumed request until its response is published, in memory that outlives this process
    /// (BlkifJournal says why): responses go out as requests complete, so a fast request's response
    /// overwrites the ring slot of a slower one, and after a crash only the journal still has it.
    /// </summary>
    private readonly BlkifJournal _journal;
    /// <summary>Slots answered but not yet published: reused only after the push, so the journal never loses an unpublished request.</summary>
    private readonly int[] _unpushed;
    private int _unpushedCount;
    /// <summary>Slots a killed predecessor left unanswered, oldest first, served before the ring.</summary>
    private readonly int[] _replay;
    private int _replayHead, _replayCount;
    private readonly BlkifRequestSegment[] _segments;
    private readonly int[] _slotPages;
    private readonly SharedMemory _iovecs;
    private readonly SharedMemory? _pool;
    private readonly int[] _freePages;
    private int _freePageCount;
    private readonly SharedMemory _indirectPages;
    private readonly GrantCopySegment[] _indirectCopy = new GrantCopySegment[BlkifLimits.MaxIndirectPagesPerRequest];
    private readonly uint[] _mapRefs;
    /// <summary>The memory-resident image's shared mapping (grant-copy path, Auto); null when not mapped.</summary>
    private readonly ImageMapping? _imageMap;
    /// <summary>This drain's verdict on <see cref="_imageMap"/>: 0 not checked yet, 1 usable, 2 not.</summary>
    private byte _imageMapState;
    private bool _batchHasImageMap;

    // One grant copy per drain: every write's data on the way in, every read's data on the way out.
    private readonly GrantCopySegment[] _batch;
    private readonly GrantCopySegment[] _batchSorted;
    private readonly int[] _batchSlot;
    private readonly int[] _batchSlotSorted;
    private readonly ulong[] _batchKeys;
    private int _batchCount;
    private readonly int[] _ready;
    private int _readyCount;
    private readonly IoCompletion[] _completions;

    private int _barrierSlot = -1;
    private int _inEngine;
    private uint _pushed;
    private bool _halted;
    private bool _stopping;
    private long _stopDeadline;
    private int _finished;
    private int _disposed;
    private long _idleAllocated;
    private uint _idleResponses;
    private AdaptivePoll _poll;
    // The latency clock, read once per drain, copy batch and completion reap rather than twice per
    // request: a clock read costs about a third of a null request's whole CPU on the bench VM.
    private long _clock;

    internal BlockQueue(int index, ushort domid, SharedMemory ringMemory, BlkifAbi abi, IEventChannels events, uint port,
        IGrantMapper grants, BlockImage image, BlockStatistics stats, BlockBackendOptions options, Action<BlockQueue, string> fatal,
        Action<string> withdrawFeature, BlkifJournal journal, ReadOnlySpan<byte> journalIdentity, bool resume,
        Action<BlockQueue, string>? ioError = null)
    {
        Index = index;
        _domid = domid;
        _ringMemory = ringMemory;
        _abi = abi;
        // At the shared rsp_prod, not at 0: equal on a fresh ring (SHARED_RING_INIT), and the only
        // index a restarted worker can trust when the guest's indexes are far past one ring (real
        // Xen: a restarted worker attached at 0 saw "a bogus req_prod" and halted the ring).
        _ring = BackRing.AttachAtSharedIndexes(ringMemory, BlkifProtocol.Layout(abi));
        int slots = checked((int)_ring.Size);
        if (journal.Slots != _ring.Size)
            throw new ArgumentException($"a journal of {journal.Slots} slots for a ring of {slots}", nameof(journal));
        _journal = journal;
        _replay = new int[slots];
        if (resume)
        {
            // A worker restarted under a live guest: its predecessor's journal says which consumed
            // requests were never answered, and where consumption stopped.
            if (!journal.Matches(journalIdentity))
                ResumeProblem = "no journal for this ring: requests its predecessor had taken and not answered cannot be served again";
            else if (journal.Recover(_ring.RspProdPvt, _replay) is var unanswered and >= 0)
            {
                _replayCount = unanswered;
                _ring = BackRing.Resume(ringMemory, BlkifProtocol.Layout(abi), journal.ReqCons, _ring.RspProdPvt);
                Resumed = true;
            }
            else
                ResumeProblem = $"the journal does not fit the ring (req_cons {journal.ReqCons}, rsp_prod {_ring.RspProdPvt}); resuming at rsp_prod";
        }
        if (!Resumed)
            journal.Reset(journalIdentity, _ring.ReqCons);
        // What is published is what the ring says, not 0: otherwise a first drain that answers
        // requests already waiting and lands rsp_prod_pvt exactly on 0 (the 2^32 wrap) looks like
        // "nothing new" and the push is skipped (found by fuzz/ block-ring).
        _pushed = _ring.RspProdPvt;
        _events = events;
        _port = port;
        _grants = grants;
        _image = image;
        _stats = stats;
        _dataPath = options.DataPath;
        _maxIndirectSegments = options.MaxIndirectSegments;
        _maxSegments = Math.Max(BlkifLimits.MaxSegmentsPerRequest, options.MaxIndirectSegments);
        _drainTimeout = options.DrainTimeout;
        _fatal = fatal;
        _withdrawFeature = withdrawFeature;
        _ioError = ioError ?? ((_, _) => { });
        _limiter = options.RateLimiter;
        _poll = new AdaptivePoll((long)(options.PollTime.TotalSeconds * Stopwatch.Frequency));

        _slots = new Slot[slots];
        _freeSlots = new int[slots];
        _unpushed = new int[slots];
        // The slots being replayed are taken; the journal holds their requests.
        for (int i = slots - 1; i >= 0; i--)
        {
            if (Array.IndexOf(_replay, i, 0, _replayCount) < 0)
                _freeSlots[_freeSlotCount++] = i;
        }
        _segments = new BlkifRequestSegment[slots * _maxSegments];
        _slotPages = new int[slots * _maxSegments];
        _iovecs = UnmanagedMemory.AllocatePages((slots * _maxSegments * IovecSize + PageSize - 1) / PageSize);
        _indirectPages = UnmanagedMemory.AllocatePages(BlkifLimits.MaxIndirectPagesPerRequest);
        _mapRefs = new uint[_maxSegments];
        int poolPages = options.BufferPagesPerQueue;
        _freePages = new int[_dataPath == BlockDataPath.GrantCopy ? poolPages : 0];
        if (_dataPath == BlockDataPath.GrantCopy)
        {
            _pool = UnmanagedMemory.AllocatePages(poolPages);
            for (int i = 0; i < poolPages; i++) _freePages[i] = poolPages - 1 - i;
            _freePageCount = poolPages;
        }
        if (_pool is not null && image.Mapping is { } imageMap && imageMap.AddReference())
            _imageMap = imageMap;
        int batch = Math.Max(poolPages, _maxSegments);
        _batch = new GrantCopySegment[batch];
        _batchSorted = new GrantCopySegment[batch];
        _batchSlot = new int[batch];
        _batchSlotSorted = new int[batch];
        _batchKeys = new ulong[batch];
        _ready = new int[slots];
        _completions = new IoCompletion[slots];

        // Each slot has at most one operation in the engine at a time, so a ring's worth of
        // capacity means TryEnqueue never has to be retried.
        if (options.IoEngineFactory is { } factory)
            _io = factory(slots);
        else if (image.IsNull)
            _io = new NullIoEngine(slots);
        else
            _io = IoEngines.Create(ChooseEngine(options.IoEngine, image), slots);
        _inlineIo = _io.CompletesInline;
        _stop = EventFd.Create();
        _epoll = new EpollSet();
        _epoll.Add(events.PollFd, TokenEventChannel);
        _epoll.Add(_io.CompletionFd, TokenCompletions);
        _epoll.Add(_stop.Handle, TokenStop);
        _thread = new Thread(Run) { IsBackground = true, Name = $"blkif-d{domid}-q{index}" };
    }

    /// <summary>
    /// Auto means io_uring, with two exceptions measured by Block.Bench on a tmpfs image. On a file in
    /// memory (tmpfs, ramfs) every request runs inline on this thread: the copy cannot wait for a
    /// device, and any hand-off costs more than the copy (backend CPU per 4 KiB request: inline
    /// 1.25-1.3 us, threads 2.7-4.1 us, io_uring 2.8-6.2 us; bench/Block.Bench/README.md). On another buffered
    /// file whose filesystem cannot read without blocking, io_uring would punt every request to an
    /// io-wq thread, so threads do the same job cheaper.
    /// </summary>
    private static IoEngineKind ChooseEngine(IoEngineKind requested, BlockImage image)
    {
        if (requested != IoEngineKind.Auto || image.File is not { Direct: false, IsBlockDevice: false } file)
            return requested;
        if (file.IsMemoryResident)
            return IoEngineKind.Inline;
        return file.SupportsNoWaitReads ? IoEngineKind.Auto : IoEngineKind.Threads;
    }

    public int Index { get; }

    /// <summary>True when this queue took over a live ring from its predecessor's journal.</summary>
    public bool Resumed { get; }

    /// <summary>Requests the predecessor had taken and not answered, served again from the journal.</summary>
    public int ReplayedRequests => _replayCount;

    /// <summary>Why a resume could not use the journal (the ring is then served from rsp_prod on), if it could not.</summary>
    public string? ResumeProblem { get; }
    public uint LocalPort => _port;
    public string IoEngineName => _io.Name;

    /// <summary>Reads and writes are copied straight through the image's mapping (a memory-resident image, Auto).</summary>
    public bool CopiesThroughImageMapping => _imageMap is { IsUsable: true };

    /// <summary>True once the worker has stopped (drained, abandoned a dead image, or failed).</summary>
    public bool Finished => Volatile.Read(ref _finished) != 0;

    /// <summary>Why the ring stopped being served, if the guest or the worker broke it.</summary>
    public string? FaultReason { get; private set; }

    /// <summary>True when the worker gave up waiting for in-flight I/O (its buffers are then never freed).</summary>
    public bool AbandonedInFlightIo { get; private set; }

    /// <summary>
    /// Responses produced and bytes this worker thread had allocated when it last went to sleep: a
    /// per-thread count is exact whatever else the process (other tests, xenstore) is doing.
    /// </summary>
    internal (uint Responses, long AllocatedBytes) IdleSnapshot
    {
        get
        {
            uint responses = Volatile.Read(ref _idleResponses);
            return (responses, Volatile.Read(ref _idleAllocated));
        }
    }

    internal void Start() => _thread.Start();

    /// <summary>
    /// One service pass (reap, drain, answer) on the caller's thread, for a queue that was never
    /// started: the coverage-guided fuzz harness (fuzz/) drives the real drain synchronously, so one
    /// input is one deterministic execution. Exceptions propagate instead of becoming a fatal ring.
    /// </summary>
    internal void ServiceOnCallerThread()
    {
        if ((_thread.ThreadState & System.Threading.ThreadState.Unstarted) == 0)
            throw new InvalidOperationException("the worker thread owns this queue");
        Service();
    }

    /// <summary>Asks the worker to stop consuming and to finish once in-flight I/O has completed.</summary>
    internal void RequestStop(TimeSpan? drainTimeout = null)
    {
        if (drainTimeout is { } limit && limit < _drainTimeout)
            _drainTimeout = limit;
        _stop.Signal();
    }

    /// <summary>Waits for the worker thread; false if it did not end in time.</summary>
    internal bool Join(TimeSpan timeout) => !_thread.IsAlive || _thread.Join(timeout);

    // ---------------------------------------------------------------- the worker thread

    private void Run()
    {
        Span<ulong> tokens = stackalloc ulong[4];
        try
        {
            // Requests queued before we bound the port never raised an event.
            Service();
            // A worker restarted under a live guest: its predecessor may have pushed responses and
            // died before its notify went out, and a guest that waits for that event waits forever
            // (the crash-consistency test hung so). One spurious event is harmless (blkfront just
            // finds nothing new), so on a ring that has been used, always tell the frontend to look.
            if (_ring.RspProdPvt != 0)
                _events.Notify(_port);
            while (true)
            {
                if (_stopping && InFlight == 0)
                    break;
                int timeout = -1;
                if (_stopping)
                {
                    long left = (_stopDeadline - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
                    if (left <= 0)
                    {
                        // A dead image (hung NFS, failed disk) must not hang the service: abandon
                        // the I/O and keep its memory alive forever rather than let it be reused.
                        AbandonedInFlightIo = true;
                        FaultReason ??= $"{InFlight} requests still in flight after {_drainTimeout.TotalSeconds:0.#} s; abandoned";
                        break;
                    }
                    timeout = (int)Math.Min(left, 1000);
                }
                else if (_throttledUntil != 0)
                    timeout = (int)Math.Max(1, (_throttledUntil - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency);
                bool ready = ReadyForRequests;
                // Only an idle spell that waits for the guest alone teaches the poll window anything,
                // and only then may the worker poll: a completion must not wait for the poll to end.
                bool waitingForGuest = ready && _poll.Enabled && _io.InFlight == 0;
                long idleFrom = waitingForGuest ? Stopwatch.GetTimestamp() : 0;
                if (ready)
                {
                    if (waitingForGuest && PollForRequests())
                    {
                        _stats.CountPollHit();
                        Service();
                        continue;
                    }
                    // RING_FINAL_CHECK_FOR_REQUESTS: ask for a kick at the next request, then look
                    // once more, so a request pushed before req_event was written is not missed.
                    RingPoll final = _ring.FinalCheckForRequests();
                    if (final == RingPoll.Faulted)
                        HaltRing();
                    else if (final == RingPoll.Work)
                    {
                        Service();
                        continue;
                    }
                }
                Volatile.Write(ref _idleAllocated, GC.GetAllocatedBytesForCurrentThread());
                Volatile.Write(ref _idleResponses, _ring.RspProdPvt);
                _stats.CountSleep();
                int n = _epoll.Wait(tokens, timeout);
                if (waitingForGuest)
                    _poll.Idled(Stopwatch.GetTimestamp() - idleFrom);
                for (int i = 0; i < n; i++)
                {
                    if (tokens[i] == TokenStop && _stop.TryConsume(out _) && !_stopping)
                    {
                        _stopping = true;
                        _stopDeadline = Stopwatch.GetTimestamp() + (long)(_drainTimeout.TotalSeconds * Stopwatch.Frequency);
                    }
                }
                bool kicked = false;
                while (_events.TryGetPending(out _))
                    kicked = true;
                Service();
                // XSA-332: the port stays masked while we drain, so a guest hammering the event
                // channel costs one wakeup per drain, not one per kick.
                if (kicked)
                    _events.Unmask(_port);
            }
        }
        catch (Exception e)
        {
            // A worker failure stops this ring only; the process and the other devices carry on.
            FaultReason ??= "queue worker failed: " + e.Message;
            AbandonedInFlightIo = InFlight != 0;
            _fatal(this, FaultReason);
        }
        finally
        {
            Volatile.Write(ref _finished, 1);
        }
    }

    /// <summary>
    /// Requests this worker started and has not answered. Those still waiting for replay are not
    /// counted: they stay in the journal for whoever serves the ring next.
    /// </summary>
    private int InFlight => _slots.Length - _freeSlotCount - _unpushedCount - (_replayCount - _replayHead);

    private void Tick() => _clock = Stopwatch.GetTimestamp();

    /// <summary>True when a request on the ring would be taken now: the only time to ask the guest for a kick.</summary>
    private bool ReadyForRequests =>
        !_stopping && !_halted && _barrierSlot < 0 && _throttledUntil == 0 && _freeSlotCount > 0
        && (_pool is null || _freePageCount >= _maxSegments);

    /// <summary>
    /// Watches req_prod for up to the poll window before the worker sleeps, with req_event left
    /// unarmed so the frontend does not kick.
    /// </summary>
    private bool PollForRequests()
    {
        if (_poll.Window == 0)
            return false;
        long deadline = Stopwatch.GetTimestamp() + _poll.Window;
        do
        {
            for (int i = 0; i < 32; i++)
            {
                if (_ring.PollRequests(out _) != RingPoll.Idle)
                    return true;
                Thread.SpinWait(4);
            }
        }
        while (Stopwatch.GetTimestamp() < deadline);
        return false;
    }

    /// <summary>Runs until neither completions nor the ring offer anything more to do right now.</summary>
    private void Service()
    {
        while (true)
        {
            bool progress = ReapCompletions();
            // Published before consuming more: the slots answered are reused only after the push.
            PushResponses();
            progress |= ConsumeRequests();
            PushResponses();
            // An inline engine completes without a wakeup, so whatever it holds must be reaped now.
            if (!progress && (!_inlineIo || _io.InFlight == 0))
                return;
        }
    }

    // ---------------------------------------------------------------- the ring drain

    private bool ConsumeRequests()
    {
        if (_stopping || _halted || _barrierSlot >= 0)
            return false;
        _imageMapState = 0;
        Tick();
        bool consumed = false;
        while (true)
        {
            bool replaying = _replayHead < _replayCount;
            if (_freeSlotCount == 0 && _unpushedCount > 0)
                PushResponses();
            // Linux's alloc_req: never take a request we might not have buffers for; completions
            // will wake us when pages come back.
            if ((_freeSlotCount == 0 && !replaying) || (_pool is not null && _freePageCount < _maxSegments))
            {
                RingPoll poll = _ring.PollRequests(out uint waiting);
                if (poll == RingPoll.Faulted)
                    HaltRing();
                else if (poll == RingPoll.Work && waiting > 0)
                    _stats.CountOutOfResources();
                break;
            }
            // QoS: over the disk's rate the request stays on the ring; the wait above retries in time.
            if (_limiter is not null && !_limiter.TryAdmit(out TimeSpan retryAfter))
            {
                _throttledUntil = Stopwatch.GetTimestamp() + (long)(retryAfter.TotalSeconds * Stopwatch.Frequency);
                break;
            }
            _throttledUntil = 0;
            if (replaying)
            {
                int replayed = _replay[_replayHead++];
                BlkifJournalEntry entry = _journal.Read(replayed);
                consumed = true;
                BlkifRequest replayedRequest = entry.Request;
                Accept(replayed, in replayedRequest, entry.Consumed);
                _limiter?.Charge(_slots[replayed].NrSectors * 512);
                if (_barrierSlot >= 0)
                    break;
                continue;
            }
            RingRead read = _ring.TryConsumeBlkifRequest(_abi, out BlkifRequest request);
            if (read == RingRead.Faulted)
            {
                HaltRing();
                break;
            }
            // Empty: req_event is armed only just before the worker sleeps (Run), so a frontend
            // that refills while we are still awake does not have to kick us.
            if (read == RingRead.Empty)
                break;
            consumed = true;
            int slot = _freeSlots[--_freeSlotCount];
            Accept(slot, in request, _ring.ReqCons - 1);
            _limiter?.Charge(_slots[slot].NrSectors * 512);
            // Nothing after a barrier may start before the barrier is on stable storage.
            if (_barrierSlot >= 0)
                break;
        }
        CopyWriteDataAndSubmit();
        StartBarrierIfDrained();
        _io.Submit();
        return consumed;
    }

    private void HaltRing()
    {
        if (_halted) return;
        _halted = true;
        _stats.CountRingFault();
        // blkback: "Frontend provided bogus ring requests ... Halting ring processing".
        FaultReason = $"frontend published a bogus req_prod (more than {_ring.Size} unanswered requests); ring halted";
        _fatal(this, FaultReason);
    }

    /// <summary>Validates the private copy of one request and sets it on its way, or answers it.</summary>
    private void Accept(int index, in BlkifRequest request, uint ringIndex)
    {
        // Journaled before anything can answer it: from here on the ring slot may be overwritten.
        _journal.Admit(index, ringIndex, in request, _ring.ReqCons);
        ref Slot s = ref _slots[index];
        s = default;
        s.Id = request.Id;
        s.Operation = request.Operation == BlkifOp.Indirect ? request.IndirectOp : request.Operation;
        s.Start = _clock;

        short status = Validate(index, in request);
        if (status != BlkifRsp.Okay)
        {
            Finish(index, status);
            return;
        }
        switch (s.Op)
        {
            case BlkifOp.Read:
                _stats.CountRead(s.NrSectors);
                PrepareBuffers(index, forRead: true);
                break;
            case BlkifOp.Write:
                _stats.CountWrite(s.NrSectors);
                PrepareBuffers(index, forRead: false);
                break;
            case BlkifOp.FlushDiskCache:
                _stats.CountFlush();
                if (s.NrSegments > 0)
                {
                    _stats.CountWrite(s.NrSectors);
                    PrepareBuffers(index, forRead: false);
                }
                else
                {
                    Ready(index);
                }
                break;
            case BlkifOp.WriteBarrier:
                _stats.CountFlush();
                _barrierSlot = index;
                if (s.NrSegments > 0)
                {
                    _stats.CountWrite(s.NrSectors);
                    PrepareBuffers(index, forRead: false);
                }
                else
                {
                    Ready(index);
                }
                break;
            case BlkifOp.Discard:
                _stats.CountDiscard();
                if (s.NrSectors == 0)
                    Finish(index, BlkifRsp.Okay);
                else
                    Ready(index);
                break;
        }
    }

    /// <summary>
    /// Every check of blkif.h and of blkback's hardening history, on private memory only (XSA-155):
    /// the ring slot and indirect pages were copied before anything here looked at them.
    /// </summary>
    private short Validate(int index, in BlkifRequest request)
    {
        ref Slot s = ref _slots[index];
        // Structural faults the decoder found: too many segments or indirect pages, an indirect_op
        // other than READ/WRITE (ERROR), an unknown operation (EOPNOTSUPP: a migrated guest may
        // re-issue what its old backend supported, tapdisk 46f842e0).
        if (!request.IsValid)
            return request.RejectionStatus;

        Span<BlkifRequestSegment> segments = _segments.AsSpan(index * _maxSegments, _maxSegments);
        int nseg = request.NrSegments;
        switch (request.Operation)
        {
            case BlkifOp.Read:
            case BlkifOp.Write:
            case BlkifOp.WriteBarrier:
            case BlkifOp.FlushDiskCache:
                s.Op = request.Operation;
                // blkif.h: only flush and barrier may carry no data.
                if (nseg == 0 && s.Op is BlkifOp.Read or BlkifOp.Write)
                    return BlkifRsp.Error;
                if (nseg > BlkifLimits.MaxSegmentsPerRequest)
                    return BlkifRsp.Error;
                for (int i = 0; i < nseg; i++)
                    segments[i] = request.Segments[i];
                break;
            case BlkifOp.Indirect:
                s.Op = request.IndirectOp;
                if (s.Op is not (BlkifOp.Read or BlkifOp.Write))
                    return BlkifRsp.Error;
                if (nseg == 0 || nseg > _maxIndirectSegments)
                    return BlkifRsp.Error;
                if (!CopyIndirectSegments(in request, segments[..nseg]))
                    return BlkifRsp.Error;
                break;
            case BlkifOp.Discard:
                s.Op = BlkifOp.Discard;
                // Discard writes: refused on a read-only disk before anything else (blkback's
                // xen_vbd_translate runs it with WRITE semantics).
                if (_image.ReadOnly)
                    return BlkifRsp.Error;
                if (!_image.DiscardEnabled)
                    return BlkifRsp.EOpNotSupp;
                s.Secure = (request.DiscardFlag & BlkifDiscardFlags.Secure) != 0;
                return CheckRange(ref s, request.SectorNumber, request.NrSectors);
            default:
                return BlkifRsp.EOpNotSupp;
        }

        // Flush and barrier promise durability of writes: on a read-only disk they are writes.
        if (_image.ReadOnly && s.Op != BlkifOp.Read)
            return BlkifRsp.Error;
        // The filesystem already refused fdatasync: the feature is withdrawn, a guest that still asks
        // (or re-issues after migration) must see EOPNOTSUPP, not an I/O error.
        if (s.Op is (BlkifOp.FlushDiskCache or BlkifOp.WriteBarrier) && !_image.FlushSupported)
            return BlkifRsp.EOpNotSupp;

        s.NrSegments = nseg;
        ulong alignMask = (ulong)(_image.SectorSize / 512 - 1);
        ulong total = 0;
        for (int i = 0; i < nseg; i++)
        {
            BlkifRequestSegment seg = segments[i];
            // A segment lives inside one 4 KiB page: first_sect <= last_sect < 8.
            if (seg.LastSect >= SectorsPerPage || seg.FirstSect > seg.LastSect)
                return BlkifRsp.Error;
            if (((ulong)seg.FirstSect & alignMask) != 0 || (((ulong)seg.LastSect + 1) & alignMask) != 0)
                return BlkifRsp.Error;
            total += (ulong)(seg.LastSect - seg.FirstSect + 1);
        }
        // A flush or barrier without data covers no range. Linux blkfront sends its empty flush
        // with sector_number (sector_t)-1 (blk_rq_init), and blkback's xen_vbd_translate checks the
        // range only when nr_sects != 0. Checking it failed every empty flush on real Xen ("xvda:
        // empty flush op failed"), after which blkfront turned flushes off for good.
        if (total == 0)
            return BlkifRsp.Okay;
        return CheckRange(ref s, request.SectorNumber, total);
    }

    /// <summary>The disk range: sector-size aligned, no u64 wrap, inside the image (blkback -EACCES).</summary>
    private short CheckRange(ref Slot s, ulong sector, ulong count)
    {
        ulong alignMask = (ulong)(_image.SectorSize / 512 - 1);
        if (((sector | count) & alignMask) != 0)
            return BlkifRsp.Error;
        ulong end = sector + count;
        if (end < sector || end > (ulong)_image.Sectors)
            return BlkifRsp.Error;
        s.Sector = (long)sector;
        s.NrSectors = (long)count;
        return BlkifRsp.Okay;
    }

    /// <summary>
    /// Copies the indirect pages into private memory in one grant copy and takes the segments from
    /// there: the guest can rewrite its pages at will, we never read them twice.
    /// </summary>
    private bool CopyIndirectSegments(in BlkifRequest request, Span<BlkifRequestSegment> segments)
    {
        int pages = BlkifRequest.IndirectPagesFor(segments.Length);
        if (pages > request.NrIndirectPages)
            return false;
        nint scratch = _indirectPages.Address;
        Span<GrantCopySegment> copy = _indirectCopy.AsSpan(0, pages);
        for (int p = 0; p < pages; p++)
            copy[p] = GrantCopySegment.FromGuest(_domid, request.IndirectGrefs[p], 0, scratch + p * PageSize, PageSize);
        _grants.Copy(copy);
        for (int p = 0; p < pages; p++)
            if (copy[p].Status != GrantStatus.Okay)
                return false;
        ReadOnlySpan<BlkifRequestSegment> copied = MemoryMarshal.Cast<byte, BlkifRequestSegment>(_indirectPages.Span);
        copied[..segments.Length].CopyTo(segments);
        return true;
    }

    /// <summary>
    /// Gives the request somewhere for its data and builds its iovecs: bounce pages (writes join
    /// this drain's grant copy) or, on the mapped path, the guest's own pages.
    /// </summary>
    private void PrepareBuffers(int index, bool forRead)
    {
        ref Slot s = ref _slots[index];
        int nseg = s.NrSegments;
        int baseIndex = index * _maxSegments;
        Span<byte> iov = _iovecs.Span.Slice(baseIndex * IovecSize, nseg * IovecSize);
        if (_pool is null)
        {
            for (int i = 0; i < nseg; i++)
                _mapRefs[i] = _segments[baseIndex + i].Gref;
            try
            {
                // A read lands in guest memory, so its pages are mapped writable; a write only reads them.
                s.Mapping = _grants.MapPages(_domid, _mapRefs.AsSpan(0, nseg), writable: forRead);
            }
            catch (GrantException)
            {
                // XSA-362: a grant the guest revoked or never gave is its error, answered as such.
                Finish(index, BlkifRsp.Error);
                return;
            }
            nint mapped = s.Mapping.Address;
            for (int i = 0; i < nseg; i++)
            {
                BlkifRequestSegment seg = _segments[baseIndex + i];
                WriteIovec(iov, i, mapped + i * PageSize + seg.FirstSect * 512, (seg.LastSect - seg.FirstSect + 1) * 512);
            }
            Ready(index);
            return;
        }

        if (s.Op is BlkifOp.Read or BlkifOp.Write && UseImageMapping(in s))
        {
            PrepareImageMapped(index, forRead);
            return;
        }
        nint pool = _pool.Address;
        for (int i = 0; i < nseg; i++)
        {
            BlkifRequestSegment seg = _segments[baseIndex + i];
            int page = _freePages[--_freePageCount];
            _slotPages[baseIndex + i] = page;
            int length = (seg.LastSect - seg.FirstSect + 1) * 512;
            nint buffer = pool + page * PageSize;
            WriteIovec(iov, i, buffer, length);
            if (!forRead)
            {
                if (_batchCount == _batch.Length)
                    RunCopyBatch(); // only when image-mapped requests filled the batch
                _batch[_batchCount] = GrantCopySegment.FromGuest(_domid, seg.Gref, (ushort)(seg.FirstSect * 512), buffer, (ushort)length);
                _batchSlot[_batchCount++] = index;
            }
        }
        s.Pages = nseg;
        if (forRead)
        {
            Ready(index);
        }
        else
        {
            s.Stage = Stage.AwaitCopy;
            _ready[_readyCount++] = index;
        }
    }

    /// <summary>
    /// Whether this request's data may go through the image mapping: it lies inside the mapped size,
    /// and the file still has that size (checked once per drain: a shrunk file would fault the
    /// process, see <see cref="ImageMapping"/>).
    /// </summary>
    private bool UseImageMapping(in Slot s)
    {
        if (_imageMap is null || s.Sector * 512 + s.NrSectors * 512 > _imageMap.Length)
            return false;
        if (_imageMapState == 0)
            _imageMapState = _imageMap.Revalidate() ? (byte)1 : (byte)2;
        return _imageMapState == 1 && _imageMap.IsUsable;
    }

    /// <summary>
    /// One copy, no syscall: the request's segments join this drain's grant copy straight between the
    /// guest's pages and the image's pages, and the request is answered once that copy is done.
    /// </summary>
    private void PrepareImageMapped(int index, bool forRead)
    {
        ref Slot s = ref _slots[index];
        int baseIndex = index * _maxSegments;
        nint at = _imageMap!.Address + (nint)(s.Sector * 512);
        for (int i = 0; i < s.NrSegments; i++)
        {
            BlkifRequestSegment seg = _segments[baseIndex + i];
            int length = (seg.LastSect - seg.FirstSect + 1) * 512;
            // Mapped requests take no bounce page, so the pool no longer bounds the batch.
            if (_batchCount == _batch.Length)
                RunCopyBatch();
            ushort offset = (ushort)(seg.FirstSect * 512);
            _batch[_batchCount] = forRead
                ? GrantCopySegment.ToGuest(at, _domid, seg.Gref, offset, (ushort)length)
                : GrantCopySegment.FromGuest(_domid, seg.Gref, offset, at, (ushort)length);
            _batchSlot[_batchCount++] = index;
            at += length;
        }
        _batchHasImageMap = true;
        s.ImageMapped = true;
        Ready(index);
    }

    private static void WriteIovec(Span<byte> iov, int i, nint address, int length)
    {
        BinaryPrimitives.WriteInt64LittleEndian(iov[(i * IovecSize)..], address);
        BinaryPrimitives.WriteInt64LittleEndian(iov[(i * IovecSize + 8)..], length);
    }

    /// <summary>Queues a request whose data (if any) is in place, to be started after this drain's copy.</summary>
    private void Ready(int index)
    {
        _slots[index].Stage = Stage.AwaitCopy;
        _ready[_readyCount++] = index;
    }

    /// <summary>One grant copy for every write of the drain, then everything accepted is started in ring order.</summary>
    private void CopyWriteDataAndSubmit()
    {
        if (_batchCount > 0)
            RunCopyBatch();
        for (int k = 0; k < _readyCount; k++)
        {
            int index = _ready[k];
            ref Slot s = ref _slots[index];
            if (s.CopyFailed)
            {
                Finish(index, BlkifRsp.Error);
                continue;
            }
            if (s.ImageMapped)
            {
                Finish(index, BlkifRsp.Okay);
                continue;
            }
            if (index == _barrierSlot)
            {
                s.Stage = Stage.AwaitBarrier;
                continue;
            }
            if (s.Op == BlkifOp.FlushDiskCache)
            {
                // blkif.h: a flush with data is "flush, then write" (QEMU's presync).
                s.Stage = Stage.PreFlush;
                Enqueue(index, IoRequest.Flush(_image.Fd, (ulong)index));
            }
            else
            {
                StartTransfer(index);
            }
        }
        _readyCount = 0;
    }

    /// <summary>
    /// Performs the batch sorted by grant reference (the hypervisor walks the grant table in order)
    /// and marks every request with a failed segment; a failure never affects another request.
    /// </summary>
    private void RunCopyBatch()
    {
        int count = _batchCount;
        Span<ulong> keys = _batchKeys.AsSpan(0, count);
        for (int k = 0; k < count; k++)
        {
            ref GrantCopySegment c = ref _batch[k];
            uint gref = (c.Flags & GrantCopyFlags.SourceGref) != 0 ? c.SourceRef : c.DestRef;
            keys[k] = ((ulong)gref << 32) | (uint)k;
        }
        keys.Sort();
        for (int k = 0; k < count; k++)
        {
            int from = (int)(uint)keys[k];
            _batchSorted[k] = _batch[from];
            _batchSlotSorted[k] = _batchSlot[from];
        }
        bool imageMapped = _batchHasImageMap;
        _batchHasImageMap = false;
        try
        {
            _grants.Copy(_batchSorted.AsSpan(0, count));
            Tick();
        }
        catch (XenNativeException) when (imageMapped)
        {
            // Real Xen: gntdev fails the whole call with EFAULT when a page of the image mapping is
            // gone (the file was truncated or punched underneath). Every request of the batch fails
            // alone, and the image is served through its fd from now on, which reports such errors.
            _imageMap!.Disable();
            for (int k = 0; k < count; k++)
                _batchSorted[k].Status = GrantStatus.GeneralError;
        }
        for (int k = 0; k < count; k++)
            if (_batchSorted[k].Status != GrantStatus.Okay)
                _slots[_batchSlotSorted[k]].CopyFailed = true;
        _batchCount = 0;
    }

    private void StartTransfer(int index)
    {
        ref Slot s = ref _slots[index];
        s.Stage = Stage.Transfer;
        int fd = _image.Fd;
        long offset = s.Sector * 512;
        ulong tag = (ulong)index;
        IoRequest request;
        if (s.Op == BlkifOp.Discard && UseImageMapping(in s))
        {
            // Zeroes instead of punching a hole: a store through the mapping must never allocate.
            _imageMap!.Zero(offset, s.NrSectors * 512);
            Finish(index, BlkifRsp.Okay);
            return;
        }
        if (s.Op == BlkifOp.Discard)
        {
            request = new IoRequest(_image.DiscardOp(s.Secure), fd, offset, 0, s.NrSectors * 512, tag);
        }
        else
        {
            nint iov = _iovecs.Address + index * _maxSegments * IovecSize;
            IoOp op = s.Op == BlkifOp.Read ? IoOp.ReadVector : IoOp.WriteVector;
            request = new IoRequest(op, fd, offset, iov, s.NrSegments, tag);
        }
        Enqueue(index, request);
    }

    private void Enqueue(int index, in IoRequest request)
    {
        if (_io.TryEnqueue(in request))
        {
            _inEngine++;
            return;
        }
        // Cannot happen with capacity = ring size; if it does, this request fails, not the ring.
        Finish(index, BlkifRsp.Error);
    }

    /// <summary>WRITE_BARRIER: once all earlier I/O has finished, write then flush (blkback's xen_blk_drain_io).</summary>
    private void StartBarrierIfDrained()
    {
        if (_barrierSlot < 0 || _inEngine != 0)
            return;
        int index = _barrierSlot;
        ref Slot s = ref _slots[index];
        if (s.Stage != Stage.AwaitBarrier)
            return;
        if (s.NrSegments > 0)
        {
            StartTransfer(index);
        }
        else
        {
            s.Stage = Stage.PostFlush;
            Enqueue(index, IoRequest.Flush(_image.Fd, (ulong)index));
        }
    }

    // ---------------------------------------------------------------- completions

    private bool ReapCompletions()
    {
        int n = _io.Reap(_completions);
        if (n == 0)
            return false;
        Tick();
        for (int k = 0; k < n; k++)
        {
            IoCompletion c = _completions[k];
            _inEngine--;
            Complete((int)c.Tag, c.Result);
        }
        // Reads answered in this pass travel to the guest in one grant copy.
        if (_batchCount > 0)
        {
            RunCopyBatch();
            for (int k = 0; k < _readyCount; k++)
            {
                int index = _ready[k];
                Finish(index, _slots[index].CopyFailed ? BlkifRsp.Error : BlkifRsp.Okay);
            }
            _readyCount = 0;
        }
        StartBarrierIfDrained();
        _io.Submit();
        return true;
    }

    private void Complete(int index, int result)
    {
        ref Slot s = ref _slots[index];
        switch (s.Stage)
        {
            case Stage.PreFlush:
                if (result < 0)
                    Finish(index, FlushFailed(result));
                // An empty flush (what Linux blkfront sends for every REQ_PREFLUSH) is done once the
                // flush is: there is no write to follow. Found by fuzz/ block-ring: it used to issue
                // a pwritev of zero iovecs after every empty flush.
                else if (s.NrSegments == 0)
                    Finish(index, BlkifRsp.Okay);
                else
                    StartTransfer(index);
                return;
            case Stage.PostFlush:
                Finish(index, result < 0 ? FlushFailed(result) : BlkifRsp.Okay);
                return;
            case Stage.Transfer:
                break;
            default:
                return;
        }
        if (s.Op == BlkifOp.Discard && result == -EOpNotSupp)
        {
            // blkback: an unsupported discard is EOPNOTSUPP and feature-discard goes to 0.
            if (_image.RefuseDiscard())
                _withdrawFeature("feature-discard");
            Finish(index, BlkifRsp.EOpNotSupp);
            return;
        }
        // An I/O error or a short transfer (ENOSPC after a partial write, EOF) fails this request only.
        bool ok = s.Op == BlkifOp.Discard ? result >= 0 : result == s.NrSectors * 512;
        if (!ok)
        {
            IoFailed(index, result);
            Finish(index, BlkifRsp.Error);
            return;
        }
        if (s.Op == BlkifOp.WriteBarrier)
        {
            s.Stage = Stage.PostFlush;
            Enqueue(index, IoRequest.Flush(_image.Fd, (ulong)index));
            return;
        }
        if (s.Op == BlkifOp.Read && _pool is not null)
        {
            int baseIndex = index * _maxSegments;
            nint pool = _pool.Address;
            for (int i = 0; i < s.NrSegments; i++)
            {
                BlkifRequestSegment seg = _segments[baseIndex + i];
                int length = (seg.LastSect - seg.FirstSect + 1) * 512;
                _batch[_batchCount] = GrantCopySegment.ToGuest(pool + _slotPages[baseIndex + i] * PageSize, _domid, seg.Gref, (ushort)(seg.FirstSect * 512), (ushort)length);
                _batchSlot[_batchCount++] = index;
            }
            _ready[_readyCount++] = index;
            return;
        }
        Finish(index, BlkifRsp.Okay);
    }

    /// <summary>A failed fdatasync: EOPNOTSUPP withdraws flush and barrier (blkback's xen_blkbk_flush_diskcache(0)).</summary>
    private short FlushFailed(int result)
    {
        if (result != -EOpNotSupp)
        {
            IoFailed(-1, result);
            return BlkifRsp.Error;
        }
        if (_image.RefuseFlush())
        {
            _withdrawFeature("feature-flush-cache");
            _withdrawFeature("feature-barrier");
        }
        return BlkifRsp.EOpNotSupp;
    }

    /// <summary>
    /// Counts a request the image failed and tells the operator, at most once per
    /// <see cref="IoErrorReportInterval"/> with the number of failures in between: an image that
    /// has gone away fails every request, and a guest retrying must not flood the log. Formatting
    /// allocates, but only here, off the steady state.
    /// </summary>
    /// <param name="index">The request's slot, or -1 for a flush.</param>
    private void IoFailed(int index, int result)
    {
        int errno = result < 0 ? -result : 0;
        _stats.CountIoError(errno);
        long now = Stopwatch.GetTimestamp();
        if (_ioErrorReportedAt != 0 && now - _ioErrorReportedAt < IoErrorReportInterval * Stopwatch.Frequency)
        {
            _ioErrorsUnreported++;
            return;
        }
        string what;
        if (index < 0)
        {
            what = "flush";
        }
        else
        {
            ref Slot s = ref _slots[index];
            string op = s.Op switch
            {
                BlkifOp.Read => "read",
                BlkifOp.Discard => "discard",
                _ => "write",
            };
            what = $"{op} of {s.NrSectors} sectors at sector {s.Sector}";
        }
        string why = errno == 0
            ? $"short transfer ({result} bytes)"
            : $"{new System.ComponentModel.Win32Exception(errno).Message} (errno {errno}){(errno is ENotConn or ENoDev or EStale or ENxio ? "; the image's storage is gone" : "")}";
        string since = _ioErrorsUnreported > 0 ? $"; {_ioErrorsUnreported} more failed since the last report" : "";
        _ioErrorsUnreported = 0;
        _ioErrorReportedAt = now;
        _ioError(this, $"image I/O failed, answered BLKIF_RSP_ERROR: {what}: {why}{since}");
    }

    // ---------------------------------------------------------------- responses

    /// <summary>Ends one request, frees what it held and answers it at once (responses go out in completion order).</summary>
    private void Finish(int index, short status)
    {
        ref Slot s = ref _slots[index];
        if (status == BlkifRsp.Error) _stats.CountError();
        else if (status == BlkifRsp.EOpNotSupp) _stats.CountNotSupported();
        _stats.Latency.RecordTicks(_clock - s.Start);
        if (s.Pages > 0)
        {
            int baseIndex = index * _maxSegments;
            for (int i = 0; i < s.Pages; i++)
                _freePages[_freePageCount++] = _slotPages[baseIndex + i];
            s.Pages = 0;
        }
        if (s.Mapping.IsMapped)
            _grants.UnmapPages(s.Mapping);
        s.Mapping = default;
        if (index == _barrierSlot)
            _barrierSlot = -1;
        // The journal learns the response's index before the response can overwrite any request
        // (written field by field into a zeroed slot: XSA-216).
        _journal.Answering(index, _ring.RspProdPvt);
        _ring.PutBlkifResponse(s.Id, s.Operation, status);
        s = default;
        _unpushed[_unpushedCount++] = index;
    }

    private void PushResponses()
    {
        uint produced = _ring.RspProdPvt;
        if (produced == _pushed)
            return;
        _pushed = produced;
        bool notify = _ring.PushResponsesAndCheckNotify();
        // Published: the journal can forget these requests and their slots can take new ones.
        for (int i = 0; i < _unpushedCount; i++)
        {
            _journal.Release(_unpushed[i]);
            _freeSlots[_freeSlotCount++] = _unpushed[i];
        }
        _unpushedCount = 0;
        if (notify)
            _events.Notify(_port);
    }

    // ---------------------------------------------------------------- teardown

    /// <summary>
    /// Frees the ring mapping, port, engine and buffers, once the worker has ended. If it never ended,
    /// or gave up on in-flight I/O, the memory the kernel may still write into is deliberately leaked.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        bool started = (_thread.ThreadState & System.Threading.ThreadState.Unstarted) == 0;
        if (started && (!Finished || _thread.IsAlive))
            return;
        _epoll.Dispose();
        _stop.Dispose();
        // The ring and its port are never an I/O target, and the worker has ended: release them even
        // when I/O was abandoned, or a saved or destroyed guest's ring pages stay mapped by dom0 for
        // good (on Xen that keeps the dead domain around).
        _ringMemory.Dispose();
        try
        {
            _events.Unbind(_port);
        }
        catch (Exception)
        {
            // The port may already be gone with the domain; nothing else to release.
        }
        _events.Dispose();
        // Nothing the kernel may still be doing targets the image mapping: the copies through it are synchronous.
        _imageMap?.Release();
        if (AbandonedInFlightIo)
            return; // the kernel may still complete into these buffers: leak them rather than reuse
        _io.Dispose();
        _pool?.Dispose();
        _iovecs.Dispose();
        _indirectPages.Dispose();
    }
}
