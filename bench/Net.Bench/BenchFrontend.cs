using XenBackends.Native;
using XenBackends.Native.Tap;
using XenBackends.Rings;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost;

namespace XenBackends.Net.Bench;

/// <summary>The guest's own view of one of its pages (what a FrontRing needs).</summary>
internal sealed class GuestView(GuestMemory memory, uint frame) : SharedMemory(memory.View.Address + (nint)frame * 4096, 4096)
{
    protected override void Release()
    {
    }
}

/// <summary>
/// A flood frontend on the simulated host, allocation-free in its loops so the allocation count of
/// a run is the backend's: it keeps the tx ring full of one prepared frame (the same granted pages
/// every time) and keeps the rx ring full of posted buffers, recycling each as soon as it is answered.
/// Two ways to wait when a pass finds nothing to do: interrupt-driven, like Linux netfront's NAPI
/// loop (set rsp_event with RING_FINAL_CHECK_FOR_RESPONSES, sleep on the event channel until the
/// backend notifies), or spin (Thread.Yield and look again). A real guest runs on its own vCPU;
/// here it shares the 2 CPUs with the backend and the tap, so the bench uses whichever takes less
/// of them per packet (Program.cs, --frontend) and reports the frontend's CPU per packet.
/// </summary>
internal sealed class BenchFrontend : IDisposable
{
    private readonly SimulatedDomain _dom;
    private readonly uint[] _frameRefs;
    private readonly int _frameLength;
    private readonly bool _gso;
    private readonly uint[] _rxRefs;
    private readonly bool _spin;
    private readonly QueuePoll _poll = new();
    // This queue's own event-channel handle, as each netfront queue has its own interrupt: with the
    // domain's shared handle, one queue's frontend took the other's kicks and left it asleep.
    private readonly SimulatedEventChannels _events;
    private ushort _nextId;

    public BenchFrontend(SimulatedDomain dom, SimulatedEventChannels events, byte[] frame, bool gso, bool spin)
    {
        _spin = spin;
        _dom = dom;
        _events = events;
        _frameLength = frame.Length;
        _gso = gso;
        uint txFrame = dom.Memory.AllocatePage(), rxFrame = dom.Memory.AllocatePage();
        TxRef = dom.Grants.GrantAccess(0, txFrame, readOnly: false);
        RxRef = dom.Grants.GrantAccess(0, rxFrame, readOnly: false);
        Tx = FrontRing.Initialize(new GuestView(dom.Memory, txFrame), NetifRings.Tx);
        Rx = FrontRing.Initialize(new GuestView(dom.Memory, rxFrame), NetifRings.Rx);
        Port = events.BindUnboundPort(0);
        _poll.Add(events.PollFd, 0);
        _frameRefs = new uint[(frame.Length + 4095) / 4096];
        for (int i = 0; i < _frameRefs.Length; i++)
        {
            uint page = dom.Memory.AllocatePage();
            frame.AsSpan(i * 4096, Math.Min(4096, frame.Length - i * 4096)).CopyTo(dom.Memory.Page(page));
            _frameRefs[i] = dom.Grants.GrantAccess(0, page, readOnly: true);
        }
        _rxRefs = new uint[Rx.Size];
        for (int i = 0; i < _rxRefs.Length; i++)
            _rxRefs[i] = dom.Grants.GrantAccess(0, dom.Memory.AllocatePage(), readOnly: false);
    }

    /// <summary>The grant refs of the prepared frame's pages.</summary>
    public uint[] FrameRefs => _frameRefs;

    public FrontRing Tx { get; }
    public FrontRing Rx { get; }
    public uint TxRef { get; }
    public uint RxRef { get; }
    public uint Port { get; }

    private int SlotsPerFrame => _frameRefs.Length + (_gso ? 1 : 0);

    /// <summary>Allocation-free wait for nothing-to-do: spin (yield) or interrupt (rsp_event + event channel).</summary>
    private void Idle(FrontRing ring)
    {
        if (_spin)
        {
            Thread.Yield(); // two shared cores: let the backend thread run
            return;
        }
        // Responses that raced with setting rsp_event are served at once; otherwise the backend's
        // push sees rsp_event and kicks us. The timeout only bounds how late a stop is noticed.
        if (ring.FinalCheckForResponses() != RingPoll.Idle)
            return;
        _poll.Wait(20);
        while (_events.TryGetPending(out uint port))
            _events.Unmask(port);
    }

    public void Dispose()
    {
        _poll.Dispose();
        _events.Dispose();
    }

    /// <summary>Keeps the tx ring full until <paramref name="stop"/> is set.</summary>
    public void FloodTx(ref bool stop)
    {
        while (!Volatile.Read(ref stop))
        {
            bool progress = false;
            while (Tx.TryConsumeResponse(out NetifTxResponse _) == RingRead.Item)
                progress = true;
            while (Tx.FreeRequests >= SlotsPerFrame)
            {
                PutFrame();
                progress = true;
            }
            if (Tx.PushRequestsAndCheckNotify())
                _events.Notify(Port);
            if (!progress)
                Idle(Tx);
        }
    }

    private void PutFrame()
    {
        ushort firstFlags = NetTxFlags.DataValidated;
        if (_frameRefs.Length > 1)
            firstFlags |= NetTxFlags.MoreData;
        if (_gso)
            firstFlags |= NetTxFlags.ExtraInfo | NetTxFlags.CsumBlank;
        Tx.PutRequest(new NetifTxRequest { Gref = _frameRefs[0], Flags = firstFlags, Id = _nextId++, Size = (ushort)_frameLength, Offset = 0 });
        if (_gso)
            Tx.PutRequest(new NetifExtraInfo { Type = NetifExtraType.Gso, GsoSize = 1448, GsoType = NetifGsoType.TcpV4 });
        for (int i = 1; i < _frameRefs.Length; i++)
        {
            int size = Math.Min(4096, _frameLength - i * 4096);
            ushort flags = i < _frameRefs.Length - 1 ? NetTxFlags.MoreData : (ushort)0;
            Tx.PutRequest(new NetifTxRequest { Gref = _frameRefs[i], Flags = flags, Id = _nextId++, Size = (ushort)size });
        }
    }

    /// <summary>
    /// Keeps every rx slot posted until <paramref name="stop"/>; each completed frame is one more
    /// credit for the source, which gets <paramref name="initialCredit"/> once the first buffers are
    /// posted (frames that found no buffers would be dropped, and their credit lost).
    /// </summary>
    public void FloodRx(ref bool stop, Action<long>? credit, long initialCredit = 0)
    {
        while (Rx.FreeRequests > 0)
            Post();
        if (Rx.PushRequestsAndCheckNotify())
            _events.Notify(Port);
        if (initialCredit > 0)
            credit?.Invoke(initialCredit);
        while (!Volatile.Read(ref stop))
        {
            long frames = 0;
            bool extra = false;
            while (Rx.TryConsumeResponse(out NetifRxResponse r) == RingRead.Item)
            {
                // An extra-info slot carries no packet; the data slot before it says one follows.
                if (extra)
                    extra = false;
                else
                {
                    extra = (r.Flags & NetRxFlags.ExtraInfo) != 0;
                    if ((r.Flags & NetRxFlags.MoreData) == 0)
                        frames++;
                }
            }
            while (Rx.FreeRequests > 0)
                Post();
            if (Rx.PushRequestsAndCheckNotify())
                _events.Notify(Port);
            if (frames > 0)
                credit?.Invoke(frames);
            else
                Idle(Rx);
        }
    }

    private void Post()
    {
        uint index = Rx.ReqProdPvt;
        Rx.PutRequest(new NetifRxRequest { Id = (ushort)(index % Rx.Size), Gref = _rxRefs[index % (uint)_rxRefs.Length] });
    }
}
