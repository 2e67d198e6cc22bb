using System.Diagnostics;
using System.Globalization;
using XenBackends.Native;
using XenBackends.Native.Linux;
using XenBackends.Rings;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost;
using XenBackends.XenStore;

namespace XenBackends.Block.Bench;

/// <summary>
/// A tight blkfront: keeps <see cref="Workload.QueueDepth"/> requests in flight on one ring and refills
/// each slot as soon as its response arrives. When it finds no response it either sleeps on its event
/// channel (as Linux blkfront does) or, polling, spins on rsp_prod (fio's hipri, SPDK) so that it can
/// keep a faster backend saturated. Every page, grant and request template is set up before the run,
/// so the driver itself allocates nothing and the allocation count is the backend's.
/// </summary>
internal sealed class BenchFrontend
{
    private const int PageSize = 4096;
    private readonly SimulatedDomain _guest;
    private readonly FrontRing _ring;
    private readonly uint _port;
    private readonly Workload _workload;
    private readonly uint[][] _slotGrefs;
    private readonly uint[] _indirectGrefs;
    private readonly bool _poll;

    public BenchFrontend(SimulatedDomain guest, Workload workload, bool poll)
    {
        _poll = poll;
        _guest = guest;
        _workload = workload;
        RingFrame = guest.Memory.AllocatePage();
        var view = new GuestView(guest.Memory.View.Address + (nint)RingFrame * PageSize, PageSize);
        _ring = FrontRing.Initialize(view, BlkifProtocol.Layout(BlkifAbi.X86_64));
        if (_ring.Size < workload.QueueDepth)
            throw new ArgumentException($"a one-page ring has {_ring.Size} slots, fewer than queue depth {workload.QueueDepth}");
        RingRef = guest.Grants.GrantAccess(SimulatedXenHost.Dom0, RingFrame, readOnly: false);
        _port = guest.EventChannels.BindUnboundPort(SimulatedXenHost.Dom0);

        // Each slot owns its data pages for the whole run: the bare copy loop uses the same frames.
        SlotFrames = new uint[workload.QueueDepth][];
        _slotGrefs = new uint[workload.QueueDepth][];
        _indirectGrefs = new uint[workload.QueueDepth];
        for (int s = 0; s < workload.QueueDepth; s++)
        {
            SlotFrames[s] = new uint[workload.Segments];
            _slotGrefs[s] = new uint[workload.Segments];
            for (int i = 0; i < workload.Segments; i++)
            {
                uint frame = guest.Memory.AllocatePage();
                SlotFrames[s][i] = frame;
                _slotGrefs[s][i] = guest.Grants.GrantAccess(SimulatedXenHost.Dom0, frame, readOnly: false);
                guest.Memory.Page(frame).Fill((byte)(s + i));
            }
            if (workload.Segments > BlkifLimits.MaxSegmentsPerRequest)
            {
                uint indirect = guest.Memory.AllocatePage();
                Span<byte> page = guest.Memory.Page(indirect);
                for (int i = 0; i < workload.Segments; i++)
                {
                    BitConverter.TryWriteBytes(page[(i * 8)..], _slotGrefs[s][i]);
                    page[i * 8 + 4] = 0;
                    page[i * 8 + 5] = 7;
                }
                _indirectGrefs[s] = guest.Grants.GrantAccess(SimulatedXenHost.Dom0, indirect, readOnly: true);
            }
        }
    }

    public uint RingFrame { get; }
    public uint RingRef { get; }
    public uint[][] SlotFrames { get; }

    /// <summary>What Linux's talk_to_blkback writes for one queue and a one-page ring.</summary>
    public Task WriteKeysAsync(XenStoreClient store, string frontendPath) =>
        store.RunTransactionAsync(async t =>
        {
            await t.WriteAsync(frontendPath + "/ring-ref", RingRef.ToString(CultureInfo.InvariantCulture));
            await t.WriteAsync(frontendPath + "/event-channel", _port.ToString(CultureInfo.InvariantCulture));
            await t.WriteAsync(frontendPath + "/protocol", BlkifProtocol.X86_64);
        });

    /// <summary>
    /// Runs the job for <paramref name="warmup"/>, then measures for <paramref name="measure"/>, then
    /// lets the requests still in flight finish (not counted). Call on a dedicated thread.
    /// </summary>
    public RunSample Run(long imageBytes, TimeSpan warmup, TimeSpan measure)
    {
        var offsets = new OffsetSequence(_workload, imageBytes);
        using var epoll = new EpollSet();
        epoll.Add(_guest.EventChannels.PollFd, 1);
        Span<ulong> tokens = stackalloc ulong[4];
        long frequency = Stopwatch.Frequency;
        long now = Stopwatch.GetTimestamp();
        long measureFrom = now + (long)(warmup.TotalSeconds * frequency);
        long stopAt = measureFrom + (long)(measure.TotalSeconds * frequency);
        bool measuring = false;
        long done = 0, errors = 0, startTicks = 0, startCpu = 0, startThreadCpu = 0, startAlloc = 0;
        int startGcs = 0;
        RunSample sample = default;

        for (int s = 0; s < _workload.QueueDepth; s++)
            Issue(s, offsets.Next());
        int inFlight = _workload.QueueDepth;
        Push();
        bool issuing = true;
        while (inFlight > 0)
        {
            int got = 0;
            while (_ring.TryConsumeResponse(out BlkifX86_64Response r) == RingRead.Item)
            {
                got++;
                inFlight--;
                done++;
                if (r.Status != BlkifRsp.Okay) errors++;
                if (issuing)
                {
                    Issue((int)r.Id, offsets.Next());
                    inFlight++;
                }
            }
            if (got > 0)
            {
                Push();
                now = Stopwatch.GetTimestamp();
                if (!measuring && now >= measureFrom)
                {
                    measuring = true;
                    startCpu = CpuClock.ProcessNanoseconds();
                    startThreadCpu = CpuClock.ThreadNanoseconds();
                    startGcs = GC.CollectionCount(0);
                    startAlloc = GC.GetTotalAllocatedBytes(precise: true);
                    startTicks = Stopwatch.GetTimestamp();
                    done = 0;
                    errors = 0;
                }
                else if (measuring && issuing && now >= stopAt)
                {
                    long ticks = Stopwatch.GetTimestamp() - startTicks;
                    long alloc = GC.GetTotalAllocatedBytes(precise: true) - startAlloc;
                    long threadCpu = CpuClock.ThreadNanoseconds() - startThreadCpu;
                    long cpu = CpuClock.ProcessNanoseconds() - startCpu;
                    sample = new RunSample(done, errors, (double)ticks / frequency, cpu, threadCpu, alloc, (int)(GC.CollectionCount(0) - startGcs), (long)_workload.BlockBytes * done);
                    issuing = false;
                }
                continue;
            }
            if (_ring.FinalCheckForResponses() == RingPoll.Work)
                continue;
            if (_poll)
            {
                // A polling driver (fio's hipri, SPDK): rsp_event is armed as blkfront arms it, so
                // the backend notifies exactly as it would, but the driver never sleeps, so it can
                // keep a backend that is faster than a sleeping driver saturated.
                SpinForResponses(inFlight);
                continue;
            }
            if (epoll.Wait(tokens, 10_000) == 0)
                throw new TimeoutException($"no response for 10 s with {inFlight} requests in flight");
            while (_guest.EventChannels.TryGetPending(out uint port))
                _guest.EventChannels.Unmask(port);
        }
        return sample;
    }

    private void SpinForResponses(int inFlight)
    {
        long giveUp = Stopwatch.GetTimestamp() + 10 * Stopwatch.Frequency;
        while (_ring.PollResponses(out _) == RingPoll.Idle)
        {
            Thread.SpinWait(4);
            if (Stopwatch.GetTimestamp() > giveUp)
                throw new TimeoutException($"no response for 10 s with {inFlight} requests in flight");
        }
    }

    private void Issue(int slot, long offset)
    {
        ulong sector = (ulong)(offset / 512);
        byte op = _workload.Write ? BlkifOp.Write : BlkifOp.Read;
        if (_workload.Segments > BlkifLimits.MaxSegmentsPerRequest)
        {
            var indirect = new BlkifX86_64RequestIndirect
            {
                Operation = BlkifOp.Indirect,
                IndirectOp = op,
                NrSegments = (ushort)_workload.Segments,
                Id = (ulong)slot,
                SectorNumber = sector,
            };
            indirect.IndirectGrefs[0] = _indirectGrefs[slot];
            _ring.PutRequest(in indirect);
            return;
        }
        var request = new BlkifX86_64Request
        {
            Operation = op,
            NrSegments = (byte)_workload.Segments,
            Id = (ulong)slot,
            SectorNumber = sector,
        };
        uint[] grefs = _slotGrefs[slot];
        for (int i = 0; i < grefs.Length; i++)
            request.Seg[i] = new BlkifRequestSegment { Gref = grefs[i], FirstSect = 0, LastSect = 7 };
        _ring.PutRequest(in request);
    }

    private void Push()
    {
        if (_ring.PushRequestsAndCheckNotify())
            _guest.EventChannels.Notify(_port);
    }

    /// <summary>The guest's own view of its ring page (its RAM belongs to the simulated domain).</summary>
    private sealed class GuestView(nint address, int length) : SharedMemory(address, length)
    {
        protected override void Release()
        {
        }
    }
}

/// <summary>One measured window: counts, wall time, CPU of the process and of the frontend thread, allocations.</summary>
internal readonly record struct RunSample(long Requests, long Errors, double Seconds, long ProcessCpuNs, long FrontendCpuNs, long AllocatedBytes, int Gen0Collections, long Bytes)
{
    public double Iops => Requests / Seconds;
    public double GBps => Bytes / Seconds / 1e9;
    public double ProcessCpuUsPerRequest => ProcessCpuNs / 1000.0 / Requests;
    /// <summary>Everything but the frontend thread: the backend worker, its I/O threads and the kernel work they cause.</summary>
    public double BackendCpuUsPerRequest => (ProcessCpuNs - FrontendCpuNs) / 1000.0 / Requests;
    public double AllocatedBytesPerRequest => (double)AllocatedBytes / Requests;
}
