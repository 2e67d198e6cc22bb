using System.Runtime.CompilerServices;
using XenBackends.Native;

namespace XenBackends.Rings;

/// <summary>
/// The front end of a shared ring (io/ring.h <c>X_front_ring</c>): produces requests, consumes
/// responses. Used by tests, the simulated guest drivers and benchmarks; it treats the backend as
/// untrusted the same way <see cref="BackRing"/> treats the frontend. Not thread-safe.
/// </summary>
public sealed unsafe class FrontRing
{
    private readonly SringView _sring;
    private readonly RingSlotLayout _layout;
    private uint _rspProdSnapshot;

    private FrontRing(SharedMemory memory, RingSlotLayout layout, uint reqProdPvt, uint rspCons)
    {
        _sring = new SringView(memory, layout);
        _layout = layout;
        if (reqProdPvt - rspCons > _sring.Size)
            throw new ArgumentException("more requests outstanding than the ring has slots", nameof(reqProdPvt));
        ReqProdPvt = reqProdPvt;
        RspCons = rspCons;
        _rspProdSnapshot = rspCons;
        Raw = new RawSharedRing(_sring);
    }

    /// <summary><c>XEN_FRONT_RING_INIT</c>: <c>SHARED_RING_INIT</c> on the page, then <c>FRONT_RING_INIT</c>.</summary>
    public static FrontRing Initialize(SharedMemory memory, RingSlotLayout layout)
    {
        var ring = new FrontRing(memory, layout, 0, 0);
        ring.Raw.InitializeShared(0);
        return ring;
    }

    /// <summary>
    /// <c>SHARED_RING_INIT</c> with every index at <paramref name="index"/> instead of 0 (the event
    /// indexes at index + 1), then <c>FRONT_RING_ATTACH</c>; lets tests start near 2^32.
    /// </summary>
    public static FrontRing Initialize(SharedMemory memory, RingSlotLayout layout, uint index)
    {
        var ring = new FrontRing(memory, layout, index, index);
        ring.Raw.InitializeShared(index);
        return ring;
    }

    /// <summary><c>FRONT_RING_ATTACH</c>: req_prod_pvt = rsp_cons = <paramref name="index"/>, shared page untouched.</summary>
    public static FrontRing Attach(SharedMemory memory, RingSlotLayout layout, uint index) => new(memory, layout, index, index);

    /// <summary>Resumes private state saved earlier: requests produced but not yet answered.</summary>
    public static FrontRing Resume(SharedMemory memory, RingSlotLayout layout, uint reqProdPvt, uint rspCons) =>
        new(memory, layout, reqProdPvt, rspCons);

    public RingSlotLayout Layout => _layout;

    public uint Size => _sring.Size;

    /// <summary>Private: next request index to produce; published to req_prod by a push.</summary>
    public uint ReqProdPvt { get; private set; }

    /// <summary>Private: next response index to consume.</summary>
    public uint RspCons { get; private set; }

    public RingFault Fault { get; private set; }

    /// <summary><c>RING_FREE_REQUESTS</c>.</summary>
    public uint FreeRequests => Size - (ReqProdPvt - RspCons);

    /// <summary><c>RING_FULL</c>.</summary>
    public bool IsFull => FreeRequests == 0;

    /// <summary>
    /// Unchecked access to the shared header and slots, for hostile-guest simulation and tests:
    /// whatever is written here is what a malicious frontend could write.
    /// </summary>
    public RawSharedRing Raw { get; }

    /// <summary>The next request slot (zeroed, write-only), then req_prod_pvt++.</summary>
    public ResponseSlot NextRequest()
    {
        if (IsFull)
            throw new InvalidOperationException("the ring is full");
        _sring.ThrowIfReleased();
        var bytes = new Span<byte>(_sring.Slot(ReqProdPvt), _layout.RequestSize);
        bytes.Clear();
        ReqProdPvt++;
        return new ResponseSlot(bytes);
    }

    /// <summary>Writes a C-layout request struct into the next request slot (zeroed first).</summary>
    public void PutRequest<TRequest>(in TRequest request)
        where TRequest : unmanaged
    {
        if (Unsafe.SizeOf<TRequest>() > _layout.RequestSize)
            throw new ArgumentException($"{typeof(TRequest).Name} is larger than this ring's request");
        if (IsFull)
            throw new InvalidOperationException("the ring is full");
        _sring.ThrowIfReleased();
        byte* slot = _sring.Slot(ReqProdPvt);
        new Span<byte>(slot, _layout.RequestSize).Clear();
        Unsafe.WriteUnaligned(slot, request);
        ReqProdPvt++;
    }

    /// <summary><c>RING_PUSH_REQUESTS_AND_CHECK_NOTIFY</c>.</summary>
    public bool PushRequestsAndCheckNotify()
    {
        _sring.ThrowIfReleased();
        uint old = _sring.Load(SharedRing.ReqProdOffset);
        uint @new = ReqProdPvt;
        _sring.Store(SharedRing.ReqProdOffset, @new);
        Interlocked.MemoryBarrier();
        uint reqEvent = _sring.Load(SharedRing.ReqEventOffset);
        return @new - reqEvent < @new - old;
    }

    /// <summary>One check of rsp_prod (read once); yields <c>XEN_RING_NR_UNCONSUMED_RESPONSES</c>.</summary>
    public RingPoll PollResponses(out uint unconsumed)
    {
        unconsumed = 0;
        if (Fault != RingFault.None)
            return RingPoll.Faulted;
        _sring.ThrowIfReleased();
        uint rspProd = _sring.Load(SharedRing.RspProdOffset);
        // RING_RESPONSE_PROD_OVERFLOW: an ill-behaved backend.
        if (rspProd - RspCons > Size)
        {
            Fault = RingFault.ResponseProducerOverflow;
            return RingPoll.Faulted;
        }
        _rspProdSnapshot = rspProd;
        unconsumed = rspProd - RspCons;
        return unconsumed == 0 ? RingPoll.Idle : RingPoll.Work;
    }

    /// <summary><c>RING_COPY_RESPONSE</c> + rsp_cons++: the only read of that slot.</summary>
    public RingRead TryConsumeResponse<TResponse>(out TResponse response)
        where TResponse : unmanaged
    {
        if (Unsafe.SizeOf<TResponse>() > _layout.ResponseSize)
            throw new ArgumentException($"{typeof(TResponse).Name} is larger than this ring's response");
        response = default;
        if (Fault != RingFault.None)
            return RingRead.Faulted;
        if (RspCons == _rspProdSnapshot)
        {
            if (PollResponses(out _) == RingPoll.Faulted)
                return RingRead.Faulted;
            if (RspCons == _rspProdSnapshot)
                return RingRead.Empty;
        }
        _sring.ThrowIfReleased();
        response = Unsafe.ReadUnaligned<TResponse>(_sring.Slot(RspCons));
        RspCons++;
        return RingRead.Item;
    }

    /// <summary><c>RING_FINAL_CHECK_FOR_RESPONSES</c>: rsp_event = rsp_cons + 1, mb, re-check.</summary>
    public RingPoll FinalCheckForResponses()
    {
        RingPoll poll = PollResponses(out _);
        if (poll != RingPoll.Idle)
            return poll;
        _sring.Store(SharedRing.RspEventOffset, RspCons + 1);
        Interlocked.MemoryBarrier();
        return PollResponses(out _);
    }
}
