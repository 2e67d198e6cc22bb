using System.Globalization;
using XenBackends.Native.Linux;
using XenBackends.Rings;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost;
using XenBackends.XenStore;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// A minimal blkfront for the tests: rings in granted guest pages, one event channel per queue,
/// requests of either ABI written byte by byte at the blkif.h offsets, so a test can also write
/// anything a hostile guest could.
/// </summary>
internal sealed class TestBlkfront
{
    public sealed class FrontQueue
    {
        public required FrontRing Ring { get; init; }
        public required uint[] RingRefs { get; init; }
        public required uint Port { get; init; }
    }

    private const int PageSize = 4096;
    private readonly SimulatedDomain _guest;

    private TestBlkfront(SimulatedDomain guest, BlkifAbi abi, int order, FrontQueue[] queues)
    {
        _guest = guest;
        Abi = abi;
        Order = order;
        Queues = queues;
    }

    public BlkifAbi Abi { get; }
    public int Order { get; }
    public FrontQueue[] Queues { get; }
    public SimulatedDomain Guest => _guest;

    /// <param name="startIndex">Where SHARED_RING_INIT puts every index (0 on a fresh ring; anything for a ring a restarted worker meets).</param>
    public static TestBlkfront Create(SimulatedDomain guest, BlkifAbi abi, int order, int queueCount, uint startIndex = 0)
    {
        var queues = new FrontQueue[queueCount];
        int pages = 1 << order;
        for (int q = 0; q < queueCount; q++)
        {
            var frames = new uint[pages];
            for (int i = 0; i < pages; i++)
            {
                frames[i] = guest.Memory.AllocatePage();
                if (i > 0 && frames[i] != frames[i - 1] + 1)
                    throw new InvalidOperationException("the test frontend needs consecutive frames for a multi-page ring");
            }
            var view = new GuestPages(guest.Memory.View.Address + (nint)frames[0] * PageSize, pages * PageSize);
            var ring = FrontRing.Initialize(view, BlkifProtocol.Layout(abi), startIndex);
            var refs = new uint[pages];
            for (int i = 0; i < pages; i++)
                refs[i] = guest.Grants.GrantAccess(SimulatedXenHost.Dom0, frames[i], readOnly: false);
            uint port = guest.EventChannels.BindUnboundPort(SimulatedXenHost.Dom0);
            queues[q] = new FrontQueue { Ring = ring, RingRefs = refs, Port = port };
        }
        return new TestBlkfront(guest, abi, order, queues);
    }

    /// <summary>What Linux's talk_to_blkback writes, in one transaction.</summary>
    public Task WriteKeysAsync(XenStoreClient store, string frontendPath, string? protocol = null) =>
        store.RunTransactionAsync(async t =>
        {
            string f = frontendPath + "/";
            if (Order > 0)
                await t.WriteAsync(f + "ring-page-order", S(Order));
            if (Queues.Length > 1)
                await t.WriteAsync(f + "multi-queue-num-queues", S(Queues.Length));
            for (int q = 0; q < Queues.Length; q++)
            {
                string p = Queues.Length == 1 ? f : f + $"queue-{q}/";
                var refs = Queues[q].RingRefs;
                if (Order == 0)
                    await t.WriteAsync(p + "ring-ref", S(refs[0]));
                else
                    for (int i = 0; i < refs.Length; i++)
                        await t.WriteAsync(p + "ring-ref" + S(i), S(refs[i]));
                await t.WriteAsync(p + "event-channel", S(Queues[q].Port));
            }
            await t.WriteAsync(f + "protocol", protocol ?? (Abi == BlkifAbi.X86_32 ? BlkifProtocol.X86_32 : BlkifProtocol.X86_64));
        });

    private static string S(long v) => v.ToString(CultureInfo.InvariantCulture);

    // ---------------------------------------------------------------- data pages

    public (uint Frame, uint Gref) AllocateDataPage(bool readOnly = false)
    {
        uint frame = _guest.Memory.AllocatePage();
        return (frame, _guest.Grants.GrantAccess(SimulatedXenHost.Dom0, frame, readOnly));
    }

    public Span<byte> Page(uint frame) => _guest.Memory.Page(frame);

    // ---------------------------------------------------------------- requests (blkif.h offsets)

    private int IdOffset => Abi == BlkifAbi.X86_32 ? 4 : 8;
    private int SectorOffset => Abi == BlkifAbi.X86_32 ? 12 : 16;
    private int SegOffset => Abi == BlkifAbi.X86_32 ? 20 : 24;

    public void PutRw(int q, byte op, ulong id, ulong sector, ReadOnlySpan<BlkifRequestSegment> segments, int? nrSegments = null)
    {
        ResponseSlot slot = Queues[q].Ring.NextRequest();
        slot.WriteByte(0, op);
        slot.WriteByte(1, (byte)(nrSegments ?? segments.Length));
        slot.WriteUInt64(IdOffset, id);
        slot.WriteUInt64(SectorOffset, sector);
        for (int i = 0; i < segments.Length && i < BlkifLimits.MaxSegmentsPerRequest; i++)
        {
            slot.WriteUInt32(SegOffset + i * 8, segments[i].Gref);
            slot.WriteByte(SegOffset + i * 8 + 4, segments[i].FirstSect);
            slot.WriteByte(SegOffset + i * 8 + 5, segments[i].LastSect);
        }
    }

    public void PutDiscard(int q, ulong id, ulong sector, ulong nrSectors, byte flag = 0)
    {
        ResponseSlot slot = Queues[q].Ring.NextRequest();
        slot.WriteByte(0, BlkifOp.Discard);
        slot.WriteByte(1, flag);
        slot.WriteUInt64(IdOffset, id);
        slot.WriteUInt64(SectorOffset, sector);
        slot.WriteUInt64(Abi == BlkifAbi.X86_32 ? 20 : 24, nrSectors);
    }

    public void PutIndirect(int q, byte indirectOp, ulong id, ulong sector, ushort nrSegments, ReadOnlySpan<uint> indirectGrefs)
    {
        ResponseSlot slot = Queues[q].Ring.NextRequest();
        slot.WriteByte(0, BlkifOp.Indirect);
        slot.WriteByte(1, indirectOp);
        slot.WriteUInt16(2, nrSegments);
        slot.WriteUInt64(IdOffset, id);
        slot.WriteUInt64(SectorOffset, sector);
        int grefs = Abi == BlkifAbi.X86_32 ? 24 : 28;
        for (int i = 0; i < indirectGrefs.Length; i++)
            slot.WriteUInt32(grefs + i * 4, indirectGrefs[i]);
    }

    /// <summary>Writes segments into an indirect page (guest memory) for <see cref="PutIndirect"/>.</summary>
    public void WriteIndirectPage(uint frame, ReadOnlySpan<BlkifRequestSegment> segments)
    {
        Span<byte> page = Page(frame);
        page.Clear();
        for (int i = 0; i < segments.Length; i++)
        {
            BitConverter.TryWriteBytes(page[(i * 8)..], segments[i].Gref);
            page[i * 8 + 4] = segments[i].FirstSect;
            page[i * 8 + 5] = segments[i].LastSect;
        }
    }

    /// <summary>A request slot with an arbitrary operation byte and id (unknown-op tests).</summary>
    public void PutOperation(int q, byte op, ulong id)
    {
        ResponseSlot slot = Queues[q].Ring.NextRequest();
        slot.WriteByte(0, op);
        slot.WriteUInt64(IdOffset, id);
    }

    public void Push(int q)
    {
        if (Queues[q].Ring.PushRequestsAndCheckNotify())
            _guest.EventChannels.Notify(Queues[q].Port);
    }

    /// <summary>Kicks the backend whatever req_event says (a guest misbehaving or recovering).</summary>
    public void Kick(int q) => _guest.EventChannels.Notify(Queues[q].Port);

    // ---------------------------------------------------------------- responses

    public readonly record struct Response(ulong Id, byte Operation, short Status);

    /// <summary>Takes whatever responses are on the ring now.</summary>
    public int TakeResponses(int q, List<Response> into)
    {
        FrontRing ring = Queues[q].Ring;
        int n = 0;
        while (true)
        {
            if (Abi == BlkifAbi.X86_32)
            {
                if (ring.TryConsumeResponse(out BlkifX86_32Response r) != RingRead.Item) break;
                into.Add(new Response(r.Id, r.Operation, r.Status));
            }
            else
            {
                if (ring.TryConsumeResponse(out BlkifX86_64Response r) != RingRead.Item) break;
                into.Add(new Response(r.Id, r.Operation, r.Status));
            }
            n++;
        }
        return n;
    }

    /// <summary>
    /// Waits (event-driven: the backend must notify) until <paramref name="count"/> responses arrived
    /// on queue <paramref name="q"/>; fails with a TimeoutException after <paramref name="timeout"/>.
    /// </summary>
    public async Task<List<Response>> WaitForResponsesAsync(int q, int count, TimeSpan? timeout = null)
    {
        var list = new List<Response>(count);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            TakeResponses(q, list);
            if (list.Count >= count)
                return list;
            if (Queues[q].Ring.FinalCheckForResponses() == RingPoll.Work)
                continue;
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new TimeoutException($"queue {q}: {list.Count} of {count} responses arrived");
            using var cts = new CancellationTokenSource(left);
            try
            {
                uint port = await _guest.EventChannels.WaitPendingAsync(cts.Token);
                _guest.EventChannels.Unmask(port);
            }
            catch (OperationCanceledException)
            {
                // Re-check the ring once more, then the deadline fails the wait.
            }
        }
    }

    /// <summary>Waits until at least one response arrived on any queue and returns all there are, tagged by queue.</summary>
    public async Task<List<(int Queue, Response Response)>> WaitAnyAsync(TimeSpan? timeout = null)
    {
        var result = new List<(int, Response)>();
        var scratch = new List<Response>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            bool more = false;
            for (int q = 0; q < Queues.Length; q++)
            {
                scratch.Clear();
                TakeResponses(q, scratch);
                foreach (var r in scratch) result.Add((q, r));
                if (Queues[q].Ring.FinalCheckForResponses() == RingPoll.Work)
                    more = true;
            }
            if (result.Count > 0)
                return result;
            if (more)
                continue;
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new TimeoutException("no response arrived on any queue");
            using var cts = new CancellationTokenSource(left);
            try
            {
                uint port = await _guest.EventChannels.WaitPendingAsync(cts.Token);
                _guest.EventChannels.Unmask(port);
            }
            catch (OperationCanceledException)
            {
                // One more look at the rings, then the deadline fails the wait.
            }
        }
    }

    public async Task<Response> RoundTripAsync(int q)
    {
        Push(q);
        var responses = await WaitForResponsesAsync(q, 1);
        Assert.Single(responses);
        return responses[0];
    }
}
