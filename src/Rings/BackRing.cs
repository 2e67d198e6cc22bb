using System.Runtime.CompilerServices;
using XenBackends.Native;

namespace XenBackends.Rings;

/// <summary>
/// The back end of a shared ring (io/ring.h <c>X_back_ring</c>): consumes requests, produces
/// responses. Pure protocol over shared memory: no I/O, no threads, no allocation per message.
/// The frontend is untrusted: requests are copied out exactly once (XSA-155), each check reads
/// req_prod once, and an impossible req_prod stops consumption for good (<see cref="Fault"/>).
/// Not thread-safe: one consumer/producer thread per ring, as in ring.h.
/// </summary>
public sealed unsafe class BackRing
{
    private readonly SringView _sring;
    private readonly RingSlotLayout _layout;
    // The req_prod value of the last check: consumption runs up to it without re-reading the
    // index, so a frontend moving req_prod mid-batch cannot change what this batch covers.
    private uint _reqProdSnapshot;

    private BackRing(SharedMemory memory, RingSlotLayout layout, uint reqCons, uint rspProdPvt)
    {
        _sring = new SringView(memory, layout);
        _layout = layout;
        if (reqCons - rspProdPvt > _sring.Size)
            throw new ArgumentException("more requests in flight than the ring has slots", nameof(reqCons));
        ReqCons = reqCons;
        RspProdPvt = rspProdPvt;
        _reqProdSnapshot = reqCons;
    }

    /// <summary><c>BACK_RING_INIT</c>: a fresh ring (the frontend ran SHARED_RING_INIT).</summary>
    public static BackRing Attach(SharedMemory memory, RingSlotLayout layout) => new(memory, layout, 0, 0);

    /// <summary><c>BACK_RING_ATTACH</c>: req_cons = rsp_prod_pvt = <paramref name="index"/>.</summary>
    public static BackRing Attach(SharedMemory memory, RingSlotLayout layout, uint index) => new(memory, layout, index, index);

    /// <summary>
    /// Attaches where the shared ring says the last backend stopped (req_cons = rsp_prod_pvt =
    /// rsp_prod), as a reconnecting backend must. The index is the frontend's to write, so it is
    /// only a starting point: later checks still bound everything against it.
    /// </summary>
    public static BackRing AttachAtSharedIndexes(SharedMemory memory, RingSlotLayout layout)
    {
        var view = new SringView(memory, layout);
        return Attach(memory, layout, view.Load(SharedRing.RspProdOffset));
    }

    /// <summary>Resumes private state saved earlier (a handover): requests consumed but not yet answered.</summary>
    public static BackRing Resume(SharedMemory memory, RingSlotLayout layout, uint reqCons, uint rspProdPvt) =>
        new(memory, layout, reqCons, rspProdPvt);

    public RingSlotLayout Layout => _layout;

    /// <summary><c>RING_SIZE</c>: number of slots.</summary>
    public uint Size => _sring.Size;

    /// <summary>Private: next request index to consume.</summary>
    public uint ReqCons { get; private set; }

    /// <summary>Private: next response index to produce; published to rsp_prod by a push.</summary>
    public uint RspProdPvt { get; private set; }

    /// <summary>Why the ring stopped, or <see cref="RingFault.None"/>. Once set, nothing more is consumed.</summary>
    public RingFault Fault { get; private set; }

    /// <summary>Requests consumed and not yet answered.</summary>
    public uint InFlight => ReqCons - RspProdPvt;

    /// <summary>
    /// One check of the shared req_prod (read once, volatile: the acquire orders the slot reads
    /// after it, the <c>rmb</c> of ring.h). Yields <c>XEN_RING_NR_UNCONSUMED_REQUESTS</c>.
    /// </summary>
    public RingPoll PollRequests(out uint unconsumed)
    {
        unconsumed = 0;
        if (Fault != RingFault.None)
            return RingPoll.Faulted;
        _sring.ThrowIfReleased();
        uint reqProd = _sring.Load(SharedRing.ReqProdOffset);
        // RING_REQUEST_PROD_OVERFLOW: never trust an index that claims more requests than slots.
        if (reqProd - RspProdPvt > Size)
        {
            Fault = RingFault.RequestProducerOverflow;
            return RingPoll.Faulted;
        }
        _reqProdSnapshot = reqProd;
        uint req = reqProd - ReqCons;
        uint rsp = Size - (ReqCons - RspProdPvt);
        unconsumed = req < rsp ? req : rsp;
        return unconsumed == 0 ? RingPoll.Idle : RingPoll.Work;
    }

    /// <summary>
    /// <c>RING_COPY_REQUEST</c> + req_cons++: copies the next request into <paramref name="request"/>,
    /// the only read of that slot. <typeparamref name="TRequest"/> is the C-layout request struct
    /// (or any view of it no larger than the request).
    /// </summary>
    public RingRead TryConsumeRequest<TRequest>(out TRequest request)
        where TRequest : unmanaged
    {
        if (Unsafe.SizeOf<TRequest>() > _layout.RequestSize)
            throw new ArgumentException($"{typeof(TRequest).Name} is larger than this ring's request");
        request = default;
        RingRead state = NextRequestSlot(out byte* slot);
        if (state == RingRead.Item)
            request = Unsafe.ReadUnaligned<TRequest>(slot);
        return state;
    }

    /// <summary>As <see cref="TryConsumeRequest{TRequest}"/>, copying the request's raw bytes into <paramref name="destination"/>.</summary>
    public RingRead TryConsumeRequest(Span<byte> destination)
    {
        if (destination.Length < _layout.RequestSize)
            throw new ArgumentException("destination is smaller than a request", nameof(destination));
        RingRead state = NextRequestSlot(out byte* slot);
        if (state == RingRead.Item)
            new ReadOnlySpan<byte>(slot, _layout.RequestSize).CopyTo(destination);
        return state;
    }

    private RingRead NextRequestSlot(out byte* slot)
    {
        slot = null;
        if (Fault != RingFault.None)
            return RingRead.Faulted;
        if (ReqCons == _reqProdSnapshot)
        {
            RingPoll poll = PollRequests(out _);
            if (poll == RingPoll.Faulted)
                return RingRead.Faulted;
            if (ReqCons == _reqProdSnapshot)
                return RingRead.Empty;
        }
        // RING_REQUEST_CONS_OVERFLOW: every slot holds a request we have not answered yet; the
        // next "request" would be our own pending response slot.
        if (ReqCons - RspProdPvt >= Size)
            return RingRead.Empty;
        _sring.ThrowIfReleased();
        slot = _sring.Slot(ReqCons);
        // Advance req_cons before any response for this slot can exist (blkback's rule).
        ReqCons++;
        return RingRead.Item;
    }

    /// <summary>
    /// The slot for the next response (<c>RING_GET_RESPONSE(rsp_prod_pvt)</c>, then rsp_prod_pvt++),
    /// with the response's bytes already zeroed. Only a consumed request can be answered.
    /// </summary>
    public ResponseSlot NextResponse()
    {
        if (RspProdPvt == ReqCons)
            throw new InvalidOperationException("every consumed request has already been answered");
        _sring.ThrowIfReleased();
        var bytes = new Span<byte>(_sring.Slot(RspProdPvt), _layout.ResponseSize);
        bytes.Clear();
        RspProdPvt++;
        return new ResponseSlot(bytes);
    }

    /// <summary>Writes <paramref name="response"/> field by field into the next response slot.</summary>
    public void PutResponse<TResponse>(in TResponse response)
        where TResponse : struct, IRingMessage =>
        response.WriteTo(NextResponse());

    /// <summary>
    /// <c>RING_PUSH_RESPONSES_AND_CHECK_NOTIFY</c>: publishes rsp_prod_pvt and says whether the
    /// frontend asked to be woken for an index in (old rsp_prod, new rsp_prod].
    /// </summary>
    public bool PushResponsesAndCheckNotify()
    {
        _sring.ThrowIfReleased();
        uint old = _sring.Load(SharedRing.RspProdOffset);
        uint @new = RspProdPvt;
        // Release store = wmb: the frontend sees the responses before the new producer index.
        _sring.Store(SharedRing.RspProdOffset, @new);
        // mb: the store of rsp_prod must not pass the load of rsp_event, or both ends sleep
        // (the lost-wakeup edk2 fixed in tianocore/edk2#3101).
        Interlocked.MemoryBarrier();
        uint rspEvent = _sring.Load(SharedRing.RspEventOffset);
        return @new - rspEvent < @new - old;
    }

    /// <summary>
    /// For a consumer that needs more requests than are posted (a frame needing more rx slots):
    /// asks for a kick at the very next request pushed (req_event = req_prod + 1, as netback's
    /// xenvif_rx_ring_slots_available does). <see cref="FinalCheckForRequests"/> cannot serve here:
    /// with requests already unconsumed it arms nothing, and req_cons + 1 would lie behind req_prod,
    /// where no push ever crosses it. True when req_prod moved meanwhile: look again before sleeping.
    /// </summary>
    public bool RequestKickOnNextRequest()
    {
        if (Fault != RingFault.None)
            return false;
        _sring.ThrowIfReleased();
        uint reqProd = _sring.Load(SharedRing.ReqProdOffset);
        _sring.Store(SharedRing.ReqEventOffset, reqProd + 1);
        Interlocked.MemoryBarrier();
        return _sring.Load(SharedRing.ReqProdOffset) != reqProd;
    }

    /// <summary>
    /// <c>RING_FINAL_CHECK_FOR_REQUESTS</c>: before sleeping, asks for a kick at the next request
    /// (req_event = req_cons + 1) and re-checks, so a request pushed meanwhile is not missed.
    /// </summary>
    public RingPoll FinalCheckForRequests()
    {
        RingPoll poll = PollRequests(out _);
        if (poll != RingPoll.Idle)
            return poll;
        _sring.Store(SharedRing.ReqEventOffset, ReqCons + 1);
        Interlocked.MemoryBarrier();
        return PollRequests(out _);
    }
}
