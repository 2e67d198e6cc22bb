using System.Buffers.Binary;
using XenBackends.Backend.Block;
using XenBackends.Rings;
using XenBackends.Rings.Blkif;

namespace XenBackends.Fuzz;

/// <summary>
/// Target 2, block-ring: the real <see cref="BlockQueue"/> (never started; its service pass runs on
/// this thread) serving one ring whose contents come from the input: raw request slots of either
/// ABI, indirect pages, the producer index, the data path (grant copy or grant map), a read-only or
/// discard-capable image, and I/O faults (EIO, short transfers, EOPNOTSUPP) from an in-memory image.
/// The input's grant references and sector numbers are folded onto the guest's few granted pages and
/// the small image (top bit set: kept raw) so valid requests are common.
/// Invariants: no exception; a bogus req_prod and only that halts the ring as fatal; otherwise every
/// request gets exactly one response with its id, a blkif status, the operation blkback answers
/// and zero padding; the image changes only inside ranges the guest asked to write, and an OKAY
/// write or discard nobody else overlapped left exactly its data (or zeros); an OKAY read never
/// went to a read-only grant; read-only and indirect pages, and pages no read named, never change.
/// </summary>
internal sealed class BlockRingTarget : FuzzTarget
{
    private const int ImageBytes = 64 * 1024;
    private const long ImageSectors = ImageBytes / 512;
    private const int PageSize = 4096;
    /// <summary>FUZZ_TRACE=1: print each request and its status (triage of a crashing input).</summary>
    private static readonly bool Trace = Environment.GetEnvironmentVariable("FUZZ_TRACE") == "1";

    private readonly GuestWorld _world = new(48);
    private readonly (uint Gref, uint Frame) _ring;
    private readonly (uint Gref, uint Frame)[] _rw, _ro, _indirect;
    /// <summary>What a data segment's gref picks from: writable, read-only, indirect pages, and refs that are no grant.</summary>
    private readonly uint[] _dataRefs;
    /// <summary>What an indirect gref picks from: never a writable page, so the segments the oracle sees are the backend's.</summary>
    private readonly uint[] _indirectRefs;
    private readonly Dictionary<uint, uint> _frameOf = [];
    private readonly byte[] _pristine = new byte[ImageBytes];

    public BlockRingTarget()
    {
        _ring = _world.GrantPage(readOnly: false);
        _rw = [.. Enumerable.Range(0, 6).Select(_ => _world.GrantPage(readOnly: false))];
        _ro = [.. Enumerable.Range(0, 3).Select(_ => _world.GrantPage(readOnly: true))];
        _indirect = [.. Enumerable.Range(0, 2).Select(_ => _world.GrantPage(readOnly: true))];
        foreach (var (gref, frame) in _rw.Concat(_ro).Concat(_indirect))
            _frameOf[gref] = frame;
        for (int i = 0; i < _ro.Length; i++)
            GuestWorld.Fill(_world.Page(_ro[i].Frame), 100 + i);
        // 0 is never granted; 1000 is a free entry; 5000 is past the 1024-entry table.
        _dataRefs = [.. _rw.Select(p => p.Gref), .. _ro.Select(p => p.Gref), .. _indirect.Select(p => p.Gref), 0, 1000, 5000];
        _indirectRefs = [.. _indirect.Select(p => p.Gref), _ro[0].Gref, 0, 5000];
        GuestWorld.Fill(_pristine, 7);
    }

    public override string Name => "block-ring";

    private sealed record Segment(uint Gref, int First, int Last);

    /// <summary>What the oracle knows of one request, from its own copy of the input.</summary>
    private sealed record Expected(byte[] Slot, byte ResponseOp, byte Op, ulong Sector, List<Segment> Segments, ulong DiscardSectors)
    {
        public bool WriteLike => Op is BlkifOp.Write or BlkifOp.WriteBarrier or BlkifOp.FlushDiskCache or BlkifOp.Discard;

        public ulong Sectors => Op == BlkifOp.Discard ? DiscardSectors
            : (ulong)Segments.Sum(s => Math.Max(0, s.Last - s.First + 1));
    }

    protected override void Execute(ReadOnlySpan<byte> data)
    {
        var input = new FuzzInput(data);
        byte config = input.Byte();
        byte faults = input.Byte();
        byte faultSeed = input.Byte();
        BlkifAbi abi = (config & 1) == 0 ? BlkifAbi.X86_64 : BlkifAbi.X86_32;
        var path = (config & 2) == 0 ? BlockDataPath.GrantCopy : BlockDataPath.GrantMap;
        bool readOnly = (config & 4) != 0, discard = (config & 8) != 0;
        int maxIndirect = (config & 16) == 0 ? 256 : 600;
        bool bogus = (config & 64) != 0;
        int rounds = (config & 128) != 0 ? 2 : 1;
        uint start = input.UInt32();
        RingSlotLayout layout = BlkifProtocol.Layout(abi);
        uint size = layout.RingSize(PageSize);

        byte[] image = (byte[])_pristine.Clone();
        for (int i = 0; i < _rw.Length; i++)
            GuestWorld.Fill(_world.Page(_rw[i].Frame), 200 + i);
        foreach (var (_, frame) in _indirect)
            FillIndirect(ref input, _world.Page(frame));
        byte[][] readOnlyBefore = [.. _ro.Concat(_indirect).Select(p => _world.Page(p.Frame).ToArray())];
        Span<byte> ring = _world.Page(_ring.Frame);
        ring.Clear();
        RingPage.Put(ring, SharedRing.ReqProdOffset, start);
        RingPage.Put(ring, SharedRing.ReqEventOffset, start + 1);
        RingPage.Put(ring, SharedRing.RspProdOffset, start);
        RingPage.Put(ring, SharedRing.RspEventOffset, start + 1);

        int descriptors = GuestWorld.OpenDescriptors();
        var (guestPort, events, port) = _world.BindChannel();
        string? fatal = null;
        var engine = new MemoryImageEngine(image, (int)size, faults, faultSeed);
        var options = new BlockBackendOptions
        {
            DataPath = path,
            MaxIndirectSegments = maxIndirect,
            BufferPagesPerQueue = maxIndirect,
            IoEngineFactory = _ => engine,
        };
        var blockImage = new BlockImage(ImageBytes, new BlockConfiguration("fuzz", Writable: !readOnly, CdRom: false, DiscardEnabled: discard, DirectIo: false));
        BlockQueue queue;
        BlkifJournal? journal = null;
        try
        {
            var ringMemory = _world.Grants.Map(GuestWorld.Domid, [_ring.Gref], writable: true);
            uint slots = BlkifProtocol.Layout(abi).RingSize(SharedRing.PageSize);
            journal = new BlkifJournal(UnmanagedMemory.AllocatePages(BlkifJournal.LengthFor(slots) / SharedRing.PageSize), slots);
            queue = new BlockQueue(0, GuestWorld.Domid, ringMemory, abi, events, port, _world.Grants, blockImage,
                new BlockStatistics(), options, (_, reason) => fatal = reason, _ => { }, journal, [], resume: false);
        }
        catch
        {
            journal?.Dispose();
            events.Dispose();
            _world.CloseGuestPort(guestPort);
            throw;
        }
        bool passed = false;
        try
        {
            uint prod = start;
            for (int round = 0; round < rounds && fatal is null; round++)
            {
                int n = input.Byte() % ((int)size + 1);
                var expected = new List<Expected>();
                for (int i = 0; i < n; i++)
                {
                    Span<byte> slot = ring.Slice(SharedRing.HeaderSize + (int)((prod + (uint)i) & (size - 1)) * layout.SlotSize, layout.RequestSize);
                    expected.Add(WriteRequest(ref input, slot, abi, (ulong)i));
                }
                prod += (uint)n;
                bool lastRound = round == rounds - 1;
                uint published = bogus && lastRound ? RingPage.Get(ring, SharedRing.RspProdOffset) + size + 1 + input.Byte() : prod;
                RingPage.Put(ring, SharedRing.ReqProdOffset, published);
                byte[] before = (byte[])image.Clone();
                byte[][] rwBefore = [.. _rw.Select(p => _world.Page(p.Frame).ToArray())];
                engine.Writes.Clear();

                queue.ServiceOnCallerThread();
                if (Trace)
                    Console.Error.WriteLine($"config {config:x2} faults {faults:x2} abi {abi} path {path} start {start} n {n}: req_prod {RingPage.Get(ring, SharedRing.ReqProdOffset)} req_event {RingPage.Get(ring, SharedRing.ReqEventOffset)} rsp_prod {RingPage.Get(ring, SharedRing.RspProdOffset)} engine ops {engine.Writes.Count} fault {queue.FaultReason}");

                if (bogus && lastRound)
                {
                    InvariantViolation.Check(fatal is not null, $"req_prod {published} with rsp_prod {RingPage.Get(ring, SharedRing.RspProdOffset)} on a {size}-slot ring did not halt the ring");
                    // Halted before taking anything this round: the image is as it was.
                    InvariantViolation.Check(image.AsSpan().SequenceEqual(before), "the image changed in the round that halted the ring");
                    break;
                }
                InvariantViolation.Check(fatal is null, () => $"the ring went fatal on a well-formed producer index: {fatal}");
                CheckResponses(ring, layout, size, published - (uint)n, expected, out var status);
                if (Trace)
                    for (int i = 0; i < expected.Count; i++)
                        Console.Error.WriteLine($"round {round} #{i}: op {expected[i].Slot[0]}/{expected[i].Op} sector {expected[i].Sector} sectors {expected[i].Sectors} segs [{string.Join(" ", expected[i].Segments.Select(g => $"{g.Gref}:{g.First}-{g.Last}"))}] -> {status[i]}");
                CheckImage(before, image, expected, status);
                CheckPages(rwBefore, expected, status);
            }
            for (int i = 0; i < readOnlyBefore.Length; i++)
            {
                uint frame = i < _ro.Length ? _ro[i].Frame : _indirect[i - _ro.Length].Frame;
                InvariantViolation.Check(_world.Page(frame).SequenceEqual(readOnlyBefore[i]), "a read-only granted page changed");
            }
            passed = true;
        }
        finally
        {
            queue.Dispose();
            journal.Dispose();
            blockImage.Dispose();
            _world.CloseGuestPort(guestPort);
            if (passed)
            {
                int after = GuestWorld.OpenDescriptors();
                InvariantViolation.Check(after <= descriptors, () => $"{after - descriptors} descriptors left open by one input");
            }
        }
    }

    private void FillIndirect(ref FuzzInput input, Span<byte> page)
    {
        int k = input.Byte() % 16;
        page.Clear();
        if (k == 0)
            return;
        Span<byte> pattern = stackalloc byte[k * 8];
        input.Bytes(pattern);
        for (int i = 0; i < k; i++)
            RingPage.Put(pattern, i * 8, _dataRefs[BinaryPrimitives.ReadUInt32LittleEndian(pattern[(i * 8)..]) % (uint)_dataRefs.Length]);
        for (int at = 0; at < page.Length; at += pattern.Length)
            pattern[..Math.Min(pattern.Length, page.Length - at)].CopyTo(page[at..]);
    }

    private static ulong FoldSector(ulong raw) => (raw >> 63) != 0 ? raw : raw % (ImageSectors + 8);

    private Expected WriteRequest(ref FuzzInput input, Span<byte> slot, BlkifAbi abi, ulong id)
    {
        bool x64 = abi == BlkifAbi.X86_64;
        int idAt = x64 ? 8 : 4, sectorAt = x64 ? 16 : 12;
        input.Bytes(slot);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[idAt..], id);
        ulong sector = FoldSector(BinaryPrimitives.ReadUInt64LittleEndian(slot[sectorAt..]));
        BinaryPrimitives.WriteUInt64LittleEndian(slot[sectorAt..], sector);
        byte op = slot[0];
        var segments = new List<Segment>();
        ulong discardSectors = 0;
        byte performed = op;
        switch (op)
        {
            case BlkifOp.Read or BlkifOp.Write or BlkifOp.WriteBarrier or BlkifOp.FlushDiskCache:
            {
                int segAt = x64 ? 24 : 20;
                for (int i = 0; i < Math.Min((int)slot[1], BlkifLimits.MaxSegmentsPerRequest); i++)
                {
                    Span<byte> seg = slot[(segAt + i * 8)..];
                    uint gref = _dataRefs[BinaryPrimitives.ReadUInt32LittleEndian(seg) % (uint)_dataRefs.Length];
                    BinaryPrimitives.WriteUInt32LittleEndian(seg, gref);
                    segments.Add(new Segment(gref, seg[4], seg[5]));
                }
                break;
            }
            case BlkifOp.Discard:
                discardSectors = FoldSector(BinaryPrimitives.ReadUInt64LittleEndian(slot[(sectorAt + 8)..]));
                BinaryPrimitives.WriteUInt64LittleEndian(slot[(sectorAt + 8)..], discardSectors);
                break;
            case BlkifOp.Indirect:
            {
                performed = slot[1];
                int nr = BinaryPrimitives.ReadUInt16LittleEndian(slot[2..]);
                int grefAt = x64 ? 28 : 24;
                int pages = Math.Min((nr + 511) / 512, BlkifLimits.MaxIndirectPagesPerRequest);
                var pageRefs = new uint[pages];
                for (int p = 0; p < pages; p++)
                {
                    pageRefs[p] = _indirectRefs[BinaryPrimitives.ReadUInt32LittleEndian(slot[(grefAt + p * 4)..]) % (uint)_indirectRefs.Length];
                    BinaryPrimitives.WriteUInt32LittleEndian(slot[(grefAt + p * 4)..], pageRefs[p]);
                }
                for (int i = 0; i < nr && i / 512 < pages; i++)
                {
                    // A ref that is no grant fails the whole request; then the segments do not matter.
                    if (!_frameOf.TryGetValue(pageRefs[i / 512], out uint frame))
                        break;
                    ReadOnlySpan<byte> seg = _world.Page(frame)[(i % 512 * 8)..];
                    segments.Add(new Segment(BinaryPrimitives.ReadUInt32LittleEndian(seg), seg[4], seg[5]));
                }
                break;
            }
        }
        return new Expected(slot.ToArray(), op == BlkifOp.Indirect ? slot[1] : op, performed, sector, segments, discardSectors);
    }

    private static void CheckResponses(Span<byte> ring, RingSlotLayout layout, uint size, uint first, List<Expected> expected, out short[] status)
    {
        uint rspProd = RingPage.Get(ring, SharedRing.RspProdOffset);
        InvariantViolation.Check(rspProd == first + (uint)expected.Count, () => $"{rspProd - first} responses to {expected.Count} requests (ops {string.Join(",", expected.Select(e => $"{e.Slot[0]}/{e.Slot[1]}"))})");
        status = new short[expected.Count];
        var seen = new bool[expected.Count];
        for (int i = 0; i < expected.Count; i++)
        {
            ReadOnlySpan<byte> rsp = ring.Slice(SharedRing.HeaderSize + (int)((first + (uint)i) & (size - 1)) * layout.SlotSize, layout.ResponseSize);
            ulong id = BinaryPrimitives.ReadUInt64LittleEndian(rsp);
            InvariantViolation.Check(id < (ulong)expected.Count && !seen[id], () => $"response id {id} unknown or answered twice");
            seen[id] = true;
            short s = BinaryPrimitives.ReadInt16LittleEndian(rsp[10..]);
            InvariantViolation.Check(s is BlkifRsp.Okay or BlkifRsp.Error or BlkifRsp.EOpNotSupp, () => $"status {s}");
            byte op = rsp[8];
            InvariantViolation.Check(op == expected[(int)id].ResponseOp, () => $"response operation {op} for request op {expected[(int)id].Slot[0]}/{expected[(int)id].Slot[1]}");
            InvariantViolation.Check(rsp[9] == 0 && !rsp[12..].ContainsAnyExcept((byte)0), "response padding is not zero (XSA-216)");
            status[id] = s;
        }
    }

    private static (ulong Start, ulong End) Range(Expected e) => (e.Sector, e.Sector + e.Sectors);

    private static bool InImage(Expected e) => e.Sector <= (ulong)ImageSectors && e.Sectors <= (ulong)ImageSectors - e.Sector;

    private void CheckImage(byte[] before, byte[] after, List<Expected> expected, short[] status)
    {
        // Every changed sector lies in the range of a write-like request the guest sent.
        for (int s = 0; s < ImageSectors; s++)
        {
            if (before.AsSpan(s * 512, 512).SequenceEqual(after.AsSpan(s * 512, 512)))
                continue;
            bool asked = expected.Any(e => e.WriteLike && InImage(e) && Range(e).Start <= (ulong)s && (ulong)s < Range(e).End);
            InvariantViolation.Check(asked, () => $"sector {s} changed but no request asked to write it");
        }
        // An OKAY write or discard that no other write-like request overlaps left exactly its data,
        // when no READ of the same batch lands in the pages it takes its data from (the guest racing
        // itself: either order is right).
        var readInto = expected.Where(e => e.Op == BlkifOp.Read).SelectMany(e => e.Segments).Select(g => g.Gref).ToHashSet();
        for (int i = 0; i < expected.Count; i++)
        {
            Expected e = expected[i];
            if (status[i] != BlkifRsp.Okay || !e.WriteLike || e.Sectors == 0)
                continue;
            InvariantViolation.Check(InImage(e), () => $"an OKAY {e.Op} at sector {e.Sector} + {e.Sectors} lies outside the {ImageSectors}-sector image");
            var (start, end) = Range(e);
            bool overlapped = expected.Where((o, j) => j != i && o.WriteLike && InImage(o) && Range(o).Start < end && start < Range(o).End).Any();
            if (overlapped || e.Segments.Any(g => readInto.Contains(g.Gref)))
                continue;
            Span<byte> actual = after.AsSpan((int)start * 512, (int)(end - start) * 512);
            if (e.Op == BlkifOp.Discard)
            {
                InvariantViolation.Check(!actual.ContainsAnyExcept((byte)0), () => $"an OKAY discard at {start} left data");
                continue;
            }
            int at = 0;
            foreach (Segment seg in e.Segments)
            {
                int length = (seg.Last - seg.First + 1) * 512;
                InvariantViolation.Check(_frameOf.TryGetValue(seg.Gref, out uint frame), () => $"an OKAY write used gref {seg.Gref}, which is not granted");
                InvariantViolation.Check(actual.Slice(at, length).SequenceEqual(_world.Page(frame).Slice(seg.First * 512, length)),
                    () => $"an OKAY write at sector {start} did not put the guest's data there");
                at += length;
            }
        }
    }

    private void CheckPages(byte[][] rwBefore, List<Expected> expected, short[] status)
    {
        var named = new HashSet<uint>();
        for (int i = 0; i < expected.Count; i++)
        {
            Expected e = expected[i];
            if (e.Op != BlkifOp.Read)
                continue;
            foreach (Segment seg in e.Segments)
            {
                named.Add(seg.Gref);
                if (status[i] == BlkifRsp.Okay)
                    InvariantViolation.Check(_rw.Any(p => p.Gref == seg.Gref), () => $"an OKAY read went to gref {seg.Gref}, which is not writable");
            }
        }
        for (int i = 0; i < _rw.Length; i++)
            if (!named.Contains(_rw[i].Gref))
                InvariantViolation.Check(_world.Page(_rw[i].Frame).SequenceEqual(rwBefore[i]), () => $"writable page {i} changed though no read named it");
    }

    public override IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        foreach (int abiBit in new[] { 0, 1 })
        {
            bool x64 = abiBit == 0;
            int size = x64 ? 112 : 108, idAt = x64 ? 8 : 4, sectorAt = x64 ? 16 : 12, segAt = x64 ? 24 : 20, grefAt = x64 ? 28 : 24;
            string a = x64 ? "64" : "32";
            byte[] Request(Action<byte[]> fill)
            {
                var s = new byte[size];
                fill(s);
                return s;
            }
            byte[] Direct(byte op, ulong sector, params (int Ref, int First, int Last)[] segs) => Request(s =>
            {
                s[0] = op; s[1] = (byte)segs.Length;
                FuzzInputWriter.Put(s, sectorAt, sector, 8);
                for (int i = 0; i < segs.Length; i++)
                {
                    FuzzInputWriter.Put(s, segAt + i * 8, (ulong)segs[i].Ref, 4);
                    s[segAt + i * 8 + 4] = (byte)segs[i].First; s[segAt + i * 8 + 5] = (byte)segs[i].Last;
                }
            });
            byte[] Input(int config, int faults, uint start, byte[] indirect, params byte[][] requests)
            {
                var w = new FuzzInputWriter().Byte(config | abiBit).Byte(faults).Byte(3).UInt32(start);
                w.Bytes(indirect).Byte(0); // indirect page 0 from the given segments, page 1 empty
                w.Byte(requests.Length);
                foreach (byte[] r in requests) w.Bytes(r);
                return w.ToArray();
            }
            byte[] noIndirect = [0];
            // Refs 0-5: writable pages, 6-8 read-only, 9-10 the indirect pages (see _dataRefs).
            yield return ($"write-read-{a}", Input(0, 0, 0, noIndirect,
                Direct(BlkifOp.Write, 8, (0, 0, 7), (6, 2, 3)), Direct(BlkifOp.Read, 8, (1, 0, 7), (2, 0, 1)), Direct(BlkifOp.Read, 0, (3, 0, 7))));
            yield return ($"flush-barrier-{a}", Input(0, 0, 0xFFFF_FFF0, noIndirect,
                Direct(BlkifOp.FlushDiskCache, ulong.MaxValue), Direct(BlkifOp.WriteBarrier, 16, (6, 0, 7)), Direct(BlkifOp.FlushDiskCache, 24, (7, 0, 7)), Direct(BlkifOp.Read, 16, (4, 0, 7))));
            yield return ($"discard-{a}", Input(8, 0, 5, noIndirect,
                Request(s => { s[0] = BlkifOp.Discard; FuzzInputWriter.Put(s, sectorAt, 32, 8); FuzzInputWriter.Put(s, sectorAt + 8, 16, 8); }),
                Request(s => { s[0] = BlkifOp.Discard; s[1] = BlkifDiscardFlags.Secure; FuzzInputWriter.Put(s, sectorAt, 64, 8); FuzzInputWriter.Put(s, sectorAt + 8, 8, 8); })));
            byte[] indirectSegments = new FuzzInputWriter().Byte(2)
                .UInt32(0).Byte(0).Byte(7).UInt16(0)
                .UInt32(7).Byte(0).Byte(7).UInt16(0).ToArray();
            yield return ($"indirect-{a}", Input(0, 0, 100, indirectSegments,
                Request(s => { s[0] = BlkifOp.Indirect; s[1] = BlkifOp.Write; FuzzInputWriter.Put(s, 2, 6, 2); FuzzInputWriter.Put(s, sectorAt, 40, 8); FuzzInputWriter.Put(s, grefAt, 0, 4); }),
                Request(s => { s[0] = BlkifOp.Indirect; s[1] = BlkifOp.Read; FuzzInputWriter.Put(s, 2, 2, 2); FuzzInputWriter.Put(s, sectorAt, 40, 8); FuzzInputWriter.Put(s, grefAt, 0, 4); })));
            yield return ($"grant-map-faults-{a}", Input(2 | 8, 0xF, 0, noIndirect,
                Direct(BlkifOp.Write, 0, (0, 0, 7), (1, 0, 7)), Direct(BlkifOp.Read, 0, (2, 0, 7), (8, 0, 7)), Direct(BlkifOp.FlushDiskCache, 0),
                Request(s => { s[0] = BlkifOp.Discard; FuzzInputWriter.Put(s, sectorAt, 0, 8); FuzzInputWriter.Put(s, sectorAt + 8, 8, 8); }),
                Direct(BlkifOp.Write, 120, (3, 0, 7), (4, 0, 7))));
            yield return ($"bad-requests-{a}", Input(4, 0, 0, noIndirect,
                Direct(BlkifOp.Write, 0, (0, 0, 7)), Direct(BlkifOp.Read, 0, (9, 0, 7)), Direct(BlkifOp.Read, 0, (11, 7, 0)),
                Request(s => { s[0] = 9; FuzzInputWriter.Put(s, idAt, 1, 8); }), Direct(BlkifOp.Read, ImageSectors - 4, (0, 0, 7))));
            var twoRounds = new FuzzInputWriter().Byte(128 | abiBit).Byte(0).Byte(0).UInt32(30).Byte(0).Byte(0)
                .Byte(1).Bytes(Direct(BlkifOp.Write, 0, (0, 0, 7))).Byte(2).Bytes(Direct(BlkifOp.Read, 0, (1, 0, 7))).Bytes(Direct(BlkifOp.Write, 8, (2, 0, 3)));
            yield return ($"two-rounds-{a}", twoRounds.ToArray());
            yield return ($"bogus-req-prod-{a}", new FuzzInputWriter().Byte(64 | abiBit).Byte(0).Byte(0).UInt32(7).Byte(0).Byte(0)
                .Byte(1).Bytes(Direct(BlkifOp.Write, 0, (0, 0, 7))).Byte(9).ToArray());
        }
    }
}
