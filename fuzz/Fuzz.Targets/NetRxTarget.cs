using System.Buffers.Binary;
using System.Runtime.InteropServices;
using XenBackends.Backend.Net;
using XenBackends.Backend.Net.Control;
using XenBackends.Native.Tap;
using XenBackends.Rings;
using XenBackends.Rings.Netif;

namespace XenBackends.Fuzz;

/// <summary>
/// Target 6, net-rx: the real <see cref="NetQueue"/>'s guest-RX path (never started; its service
/// pass runs on this thread). The input chooses the frontend's features, the frames the tap hands
/// over (length up to past the 64 KiB limit, Ethernet/IP headers, and the whole virtio_net_hdr:
/// checksum offsets and GSO as the network and the host stack may produce them), read failures, and
/// the guest's rx ring (ids, grant refs folded onto its pages, including read-only and bogus ones,
/// and a producer index). With a Toeplitz hash set, frames also carry the hash extra; with a second
/// queue, the guest's key and mapping table steer frames read on the first queue's tap fd to it.
/// Invariants: no exception; fatal always for a bogus req_prod and never otherwise; every response
/// sits in the slot of the request it consumed with that request's id (extras in slots of their own),
/// offset 0, and a frame's slots follow netif.h (NETRXF_more_data on all but the last data slot,
/// NETRXF_extra_info on the first iff extras follow, chained by XEN_NETIF_EXTRA_FLAG_MORE, only GSO
/// and hash extras). Every frame the guest got is one the tap handed over, in order, whole and byte
/// for byte (but a checksum the backend completed, which must then verify); a GSO frame reaches only
/// a frontend that accepts its type, always with its gso_size; a partial checksum is passed on only
/// to a frontend that takes it. Only pages named by consumed requests change, never a read-only one.
/// </summary>
internal sealed class NetRxTarget : FuzzTarget
{
    private const int PageSize = 4096;
    private const int HeaderBytes = 64;
    private const int WritablePages = 48;

    /// <summary>FUZZ_TRACE=1: print what each queue delivered and dropped (triage, and checking that seeds reach their path).</summary>
    private static readonly bool Trace = Environment.GetEnvironmentVariable("FUZZ_TRACE") == "1";

    private readonly GuestWorld _world = new(64);
    private readonly (uint Gref, uint Frame)[] _tx, _rx;
    private readonly (uint Gref, uint Frame) _readOnly, _key, _mapping;
    private readonly (uint Gref, uint Frame)[] _pages;
    private readonly uint[] _refs;
    private readonly Dictionary<uint, uint> _frameOf = [];

    public NetRxTarget()
    {
        _tx = [_world.GrantPage(readOnly: false), _world.GrantPage(readOnly: false)];
        _rx = [_world.GrantPage(readOnly: false), _world.GrantPage(readOnly: false)];
        _readOnly = _world.GrantPage(readOnly: true);
        _key = _world.GrantPage(readOnly: true);
        _mapping = _world.GrantPage(readOnly: true);
        _pages = [.. Enumerable.Range(0, WritablePages).Select(_ => _world.GrantPage(readOnly: false))];
        foreach (var (gref, frame) in _pages)
            _frameOf[gref] = frame;
        _refs = [.. _pages.Select(p => p.Gref), _readOnly.Gref, 0, 5000];
    }

    public override string Name => "net-rx";

    private sealed record Injected(byte[] Record, VirtioNetHeader Header)
    {
        public ReadOnlySpan<byte> Frame => Record.AsSpan(VirtioNetHeader.Size);
    }

    protected override void Execute(ReadOnlySpan<byte> data)
    {
        var input = new FuzzInput(data);
        byte config = input.Byte();
        byte config2 = input.Byte();
        bool bogus = (config & 0x80) != 0;
        var features = new NetFrontendFeatures
        {
            Sg = (config & 1) != 0,
            GsoTcpV4 = (config & 2) != 0,
            GsoTcpV6 = (config & 4) != 0,
            Ipv4CsumOffload = (config & 8) != 0,
            Ipv6CsumOffload = (config & 16) != 0,
        };
        var options = new NetQueueOptions
        {
            RxQueueBytes = (config2 & 2) != 0 ? 70 * 1024 : 512 * 1024,
            // Zero: a frame that does not fit the posted slots stalls the queue at once (XSA-392's path).
            RxStallTimeout = (config & 0x40) != 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(10),
        };
        bool hashing = (config2 & 1) != 0;
        bool multicastFilter = (config & 0x20) != 0;
        byte failMask = input.Byte();

        var frames = new List<Injected>();
        int frameCount = input.Byte() % 9;
        for (int f = 0; f < frameCount; f++)
            frames.Add(NextFrame(ref input, f));

        for (int i = 0; i < _pages.Length; i++)
            GuestWorld.Fill(_world.Page(_pages[i].Frame), 90 + i);
        GuestWorld.Fill(_world.Page(_readOnly.Frame), 89);
        var rings = new List<RingInput> { WriteRings(ref input, 0, bogus) };
        // Read after the first ring, so inputs written before these existed keep their meaning: a
        // second queue (frames read on the first queue's tap fd are steered to it by the guest's
        // hash settings, as xenvif_select_queue does), the Toeplitz key and a mapping table, whose
        // entries may name queues that do not exist (SET_HASH_MAPPING must refuse those).
        byte config3 = input.Byte();
        int queueCount = (config3 & 1) != 0 ? 2 : 1;
        input.Bytes(_world.Page(_key.Frame)[..Toeplitz.MaxKeyLength]);
        int mappingSize = (config3 & 2) != 0 ? 1 + input.Byte() % 16 : 0;
        Span<byte> mapping = _world.Page(_mapping.Frame);
        for (int i = 0; i < mappingSize; i++)
        {
            byte b = input.Byte();
            BinaryPrimitives.WriteUInt32LittleEndian(mapping[(i * 4)..], b < 250 ? b % 2u : b);
        }
        if (queueCount == 2)
            rings.Add(WriteRings(ref input, 1, bogus: false));

        using var tap = new ScriptedTap([.. frames.Select(f => f.Record)], failMask);
        using var quietTap = new ScriptedTap([], 0);
        int descriptors = GuestWorld.OpenDescriptors();
        var fatal = new string?[queueCount];
        var built = new List<(NetQueue Queue, uint GuestPort)>();
        try
        {
            var vif = new VifShared(new MulticastFilter(multicastFilter), hashing ? Hashing(queueCount, mappingSize) : null, null);
            for (int q = 0; q < queueCount; q++)
            {
                int index = q;
                built.Add(FuzzNetQueue.Open(_world, q, _tx[q].Gref, _rx[q].Gref, q == 0 ? tap : quietTap,
                    features, options, vif, reason => fatal[index] = reason));
            }
            vif.Queues = [.. built.Select(b => b.Queue)];
        }
        catch (Exception e)
        {
            foreach (var (queue, guestPort) in built)
            {
                queue.Dispose();
                _world.CloseGuestPort(guestPort);
            }
            // Refused at attach: a ring that already claims more requests than slots (documented).
            if (e is not InvalidDataException || !bogus)
                throw;
            GuestWorld.CheckDescriptors(descriptors);
            return;
        }
        bool passed = false;
        try
        {
            for (int pass = 0; pass < 4; pass++)
                for (int q = 0; q < queueCount; q++)
                    if (fatal[q] is null)
                        built[q].Queue.ServiceRxOnCallerThread();
            if (bogus)
                InvariantViolation.Check(fatal[0] is not null, "a bogus rx req_prod did not make the queue fatal");
            for (int q = bogus ? 1 : 0; q < queueCount; q++)
                InvariantViolation.Check(fatal[q] is null, () => $"queue {q} fatal without a bogus req_prod: {fatal[q]}");
            if (!bogus)
            {
                int[] delivered = CheckResponses(rings, frames, features, hashing);
                if (Trace)
                    for (int q = 0; q < queueCount; q++)
                        Console.Error.WriteLine($"queue {q}: {delivered[q]} delivered, {built[q].Queue.Counters.RxDrops} dropped, {built[q].Queue.Counters.RxErrors} errors; tap handed over {tap.Consumed} of {frames.Count}");
                for (int q = 0; q < queueCount; q++)
                    InvariantViolation.Check(built[q].Queue.Counters.RxPackets == delivered[q], () => $"queue {q}: {built[q].Queue.Counters.RxPackets} rx packets counted, {delivered[q]} in its ring");
            }
            passed = true;
        }
        finally
        {
            foreach (var (queue, guestPort) in built)
            {
                queue.Dispose();
                _world.CloseGuestPort(guestPort);
            }
            if (passed)
                GuestWorld.CheckDescriptors(descriptors);
        }
    }

    /// <summary>One queue's rings as the guest wrote them; the rx responses are read back after the passes.</summary>
    private sealed record RingInput(int Queue, uint Start, (ushort Id, uint Gref)[] Requests);

    /// <summary>An idle tx ring and an rx ring of posted requests for queue <paramref name="q"/>, from the input.</summary>
    private RingInput WriteRings(ref FuzzInput input, int q, bool bogus)
    {
        uint start = input.UInt32();
        RingSlotLayout layout = NetifRings.Rx;
        uint size = layout.RingSize(PageSize);
        Span<byte> ring = _world.Page(_rx[q].Frame);
        ring.Clear();
        Span<byte> txRing = _world.Page(_tx[q].Frame);
        txRing.Clear();
        RingPage.Put(txRing, SharedRing.ReqEventOffset, 1);
        RingPage.Put(txRing, SharedRing.RspEventOffset, 1);
        RingPage.Put(ring, SharedRing.ReqEventOffset, start + 1);
        RingPage.Put(ring, SharedRing.RspProdOffset, start);
        RingPage.Put(ring, SharedRing.RspEventOffset, start + 1);

        int n = input.Byte() % (int)size;
        var requests = new (ushort Id, uint Gref)[n];
        for (int i = 0; i < n; i++)
        {
            Span<byte> raw = ring.Slice(SharedRing.HeaderSize + (int)((start + (uint)i) & (size - 1)) * layout.SlotSize, layout.RequestSize);
            ushort id = input.UInt16();
            uint gref = _refs[input.Byte() % _refs.Length];
            BinaryPrimitives.WriteUInt16LittleEndian(raw, id);
            BinaryPrimitives.WriteUInt16LittleEndian(raw[2..], input.UInt16());
            BinaryPrimitives.WriteUInt32LittleEndian(raw[4..], gref);
            requests[i] = (id, gref);
        }
        uint published = bogus ? start + size + 1 + input.Byte() : start + (uint)n;
        RingPage.Put(ring, SharedRing.ReqProdOffset, published);
        return new RingInput(q, start, requests);
    }

    private static Injected NextFrame(ref FuzzInput input, int index)
    {
        byte sizeClass = input.Byte();
        ushort raw = input.UInt16();
        int length = (sizeClass & 3) switch
        {
            0 => 14 + raw % 200,
            1 => raw % 1600,
            2 => 60_000 + raw % 5_700, // around the 64 KiB limit (65535 + 64), both sides of it
            _ => raw,
        };
        var header = new VirtioNetHeader
        {
            Flags = (byte)(input.Byte() & 3),
            GsoType = input.Byte() switch { < 96 => VirtioNetHeader.GsoNone, < 160 => VirtioNetHeader.GsoTcpV4, < 224 => VirtioNetHeader.GsoTcpV6, var b => b },
            HdrLen = input.UInt16(),
            GsoSize = input.UInt16(),
            CsumStart = input.UInt16(),
            CsumOffset = input.UInt16(),
        };
        // Offsets mostly inside the frame, as the host stack writes them; a raw value keeps its top bit.
        if ((header.CsumStart & 0x8000) == 0 && length > 0)
            header.CsumStart = (ushort)(header.CsumStart % length);
        if ((header.CsumOffset & 0x8000) == 0)
            header.CsumOffset = (ushort)(header.CsumOffset % 20);
        var record = new byte[VirtioNetHeader.Size + length];
        header.WriteTo(record);
        Span<byte> frame = record.AsSpan(VirtioNetHeader.Size);
        // Distinct bodies, so a frame delivered in the wrong place or order cannot match another.
        GuestWorld.Fill(frame, 7 + index * 13);
        // Always 64 input bytes, so a short frame does not shift the choices after it.
        Span<byte> headers = stackalloc byte[HeaderBytes];
        input.Bytes(headers);
        headers[..Math.Min(HeaderBytes, length)].CopyTo(frame);
        // The last byte of the source MAC (which the backend never reads) numbers the frame, so two
        // short frames made of the same input bytes still differ and the oracle pairs the right ones.
        if (length > 11)
            frame[11] = (byte)index;
        return new Injected(record, header);
    }

    private CtrlRequestProcessor Hashing(int queueCount, int mappingSize)
    {
        var processor = new CtrlRequestProcessor(GuestWorld.Domid, _world.Grants, queueCount);
        Request(processor, NetifCtrlType.SetHashAlgorithm, NetifCtrlHashAlgorithm.Toeplitz);
        Request(processor, NetifCtrlType.SetHashFlags, NetifCtrlHashType.Ipv4 | NetifCtrlHashType.Ipv4Tcp | NetifCtrlHashType.Ipv6 | NetifCtrlHashType.Ipv6Tcp);
        Request(processor, NetifCtrlType.SetHashKey, _key.Gref, Toeplitz.MaxKeyLength);
        InvariantViolation.Check(processor.Settings.IsHashing, "the hash settings did not take");
        if (mappingSize > 0)
        {
            Request(processor, NetifCtrlType.SetHashMappingSize, (uint)mappingSize);
            // Refused (and the table left as it was) when an entry names a queue that does not exist.
            Request(processor, NetifCtrlType.SetHashMapping, _mapping.Gref, (uint)mappingSize, 0);
            InvariantViolation.Check(processor.Settings.Mapping.All(e => e < queueCount), "a mapping entry past the queue count was accepted");
        }
        return processor;
    }

    private static void Request(CtrlRequestProcessor processor, ushort type, uint data0, uint data1 = 0, uint data2 = 0)
    {
        Span<byte> bytes = stackalloc byte[16];
        bytes.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[2..], type);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[4..], data0);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[8..], data1);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[12..], data2);
        processor.Process(MemoryMarshal.Read<XenNetifCtrlRequest>(bytes));
    }

    /// <summary>Walks every queue's responses as netfront does; returns how many frames each guest queue got.</summary>
    private int[] CheckResponses(List<RingInput> rings, List<Injected> frames, NetFrontendFeatures features, bool hashing)
    {
        uint size = NetifRings.Rx.RingSize(PageSize);
        var consumed = new int[rings.Count];
        // Pages that more than one consumed request named (on any queue) hold only the last copy: not comparable.
        var uses = new Dictionary<uint, int>();
        foreach (RingInput r in rings)
        {
            uint rspProd = RingPage.Get(_world.Page(_rx[r.Queue].Frame), SharedRing.RspProdOffset);
            int count = consumed[r.Queue] = (int)(rspProd - r.Start);
            InvariantViolation.Check(count >= 0 && count <= r.Requests.Length, () => $"queue {r.Queue}: {rspProd - r.Start} responses for {r.Requests.Length} requests");
            for (int k = 0; k < count; k++)
                uses[r.Requests[k].Gref] = uses.GetValueOrDefault(r.Requests[k].Gref) + 1;
        }
        int[] delivered = [.. rings.Select(r => CheckRing(r, consumed[r.Queue], size, uses, frames, features, hashing))];

        // Only consumed requests' pages may change, and never a read-only one.
        var named = new HashSet<uint>(rings.SelectMany(r => r.Requests.Take(consumed[r.Queue]).Select(q => q.Gref)));
        Span<byte> expected = stackalloc byte[PageSize];
        for (int i = 0; i < _pages.Length; i++)
        {
            if (named.Contains(_pages[i].Gref))
                continue;
            GuestWorld.Fill(expected, 90 + i);
            InvariantViolation.Check(_world.Page(_pages[i].Frame).SequenceEqual(expected), () => $"page {i} changed, no consumed request named it");
        }
        GuestWorld.Fill(expected, 89);
        InvariantViolation.Check(_world.Page(_readOnly.Frame).SequenceEqual(expected), "the read-only page changed");
        return delivered;
    }

    /// <summary>One queue's responses: slot by slot, frame by frame; returns how many frames it delivered.</summary>
    private int CheckRing(RingInput r, int count, uint size, Dictionary<uint, int> uses, List<Injected> frames, NetFrontendFeatures features, bool hashing)
    {
        byte[] page = _world.Page(_rx[r.Queue].Frame).ToArray();
        uint start = r.Start;
        var requests = r.Requests;
        ReadOnlySpan<byte> Rsp(int k) => page.AsSpan(SharedRing.HeaderSize + (int)((start + (uint)k) & (size - 1)) * 8, 8);

        int k0 = 0, nextFrame = 0, delivered = 0;
        while (k0 < count)
        {
            int first = k0;
            var data = new List<byte>();
            bool comparable = true, error = false;
            ushort firstFlags = 0;
            NetifExtraInfo? gso = null;
            bool more = true;
            while (more)
            {
                InvariantViolation.Check(k0 < count, "a frame's NETRXF_more_data runs past the last response");
                ReadOnlySpan<byte> rsp = Rsp(k0);
                ushort id = BinaryPrimitives.ReadUInt16LittleEndian(rsp);
                ushort offset = BinaryPrimitives.ReadUInt16LittleEndian(rsp[2..]);
                ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(rsp[4..]);
                short status = BinaryPrimitives.ReadInt16LittleEndian(rsp[6..]);
                int slot = k0;
                InvariantViolation.Check(id == requests[slot].Id, () => $"response {slot} carries id {id}, its request's is {requests[slot].Id}");
                InvariantViolation.Check(offset == 0, () => $"response {slot} at offset {offset}");
                InvariantViolation.Check(status <= PageSize && status != 0, () => $"response {slot} status {status}");
                InvariantViolation.Check(k0 == first || (flags & ~NetRxFlags.MoreData) == 0, () => $"a later slot of a frame has flags {flags:x}");
                if (status < 0)
                {
                    error = true;
                }
                else
                {
                    uint gref = requests[slot].Gref;
                    InvariantViolation.Check(_frameOf.ContainsKey(gref), () => $"response {slot} says {status} bytes went to gref {gref}, which is not writable by dom0");
                    comparable &= uses[gref] == 1;
                    data.AddRange(_world.Page(_frameOf[gref])[..status].ToArray());
                }
                k0++;
                if (slot == first)
                {
                    firstFlags = flags;
                    if ((flags & NetRxFlags.ExtraInfo) != 0)
                        gso = Extras(ref k0, count, k => MemoryMarshal.Read<NetifExtraInfo>(Rsp(k)), hashing);
                }
                more = (flags & NetRxFlags.MoreData) != 0;
            }
            delivered++;
            if (error)
                continue; // the guest drops it; nothing to compare
            int? match = null;
            while (nextFrame < frames.Count && match is null)
            {
                Injected candidate = frames[nextFrame++];
                if (candidate.Frame.Length == data.Count && (!comparable || SameFrame(candidate, data, firstFlags)))
                    match = nextFrame - 1;
            }
            InvariantViolation.Check(match is not null, () => $"the guest got a {data.Count}-byte frame the tap never handed over in that place");
            // Matched by length alone when a page was reused: its flags may belong to another frame.
            if (comparable)
                CheckOffloads(frames[match!.Value], firstFlags, gso, features, data);
        }

        return delivered;
    }

    /// <summary>The extra-info slots after a first slot; returns the GSO extra if there is one.</summary>
    private static NetifExtraInfo? Extras(ref int k, int count, Func<int, NetifExtraInfo> extraAt, bool hashing)
    {
        NetifExtraInfo? gso = null;
        bool more = true, seenGso = false, seenHash = false;
        while (more)
        {
            InvariantViolation.Check(k < count, "NETRXF_extra_info without its extra slot");
            NetifExtraInfo extra = extraAt(k++);
            more = (extra.Flags & NetifExtraFlags.More) != 0;
            if (extra.Type == NetifExtraType.Gso)
            {
                InvariantViolation.Check(!seenGso && !seenHash, "a GSO extra twice or after the hash extra");
                seenGso = true;
                gso = extra;
            }
            else
            {
                InvariantViolation.Check(extra.Type == NetifExtraType.Hash && hashing && !seenHash, () => $"extra type {extra.Type} (hashing {hashing})");
                InvariantViolation.Check(extra.HashAlgorithm == NetifCtrlHashAlgorithm.Toeplitz, "hash extra of another algorithm");
                seenHash = true;
            }
        }
        return gso;
    }

    private static bool SameFrame(Injected sent, List<byte> got, ushort flags)
    {
        int csumAt = Completed(sent.Header, flags) ? sent.Header.CsumStart + sent.Header.CsumOffset : -1;
        ReadOnlySpan<byte> frame = sent.Frame;
        for (int i = 0; i < frame.Length; i++)
            if (frame[i] != got[i] && (csumAt < 0 || i < csumAt || i >= csumAt + 2))
                return false;
        return true;
    }

    // A partial checksum the backend had to finish because the frontend cannot take it as such.
    private static bool Completed(in VirtioNetHeader header, ushort flags) =>
        (header.Flags & VirtioNetHeader.FlagNeedsCsum) != 0 && (flags & NetRxFlags.CsumBlank) == 0;

    private static void CheckOffloads(Injected sent, ushort flags, NetifExtraInfo? gso, NetFrontendFeatures features, List<byte> got)
    {
        VirtioNetHeader h = sent.Header;
        ReadOnlySpan<byte> frame = sent.Frame;
        InvariantViolation.Check(frame.Length <= PageSize || features.Sg, "a multi-slot frame to a frontend without feature-sg");
        byte gsoType = (byte)(h.GsoType & ~VirtioNetHeader.GsoEcn);
        if (gsoType != VirtioNetHeader.GsoNone)
        {
            bool accepted = (gsoType == VirtioNetHeader.GsoTcpV4 && features.GsoTcpV4) || (gsoType == VirtioNetHeader.GsoTcpV6 && features.GsoTcpV6);
            InvariantViolation.Check(accepted && gso is { } g && g.GsoSize == h.GsoSize && g.GsoSize > 0
                && g.GsoType == (gsoType == VirtioNetHeader.GsoTcpV4 ? NetifGsoType.TcpV4 : NetifGsoType.TcpV6),
                () => $"a gso_type {h.GsoType} frame reached the guest as {(gso is null ? "no GSO" : $"GSO {gso.Value.GsoType}/{gso.Value.GsoSize}")} (v4 {features.GsoTcpV4}, v6 {features.GsoTcpV6})");
            InvariantViolation.Check((flags & NetRxFlags.CsumBlank) != 0, "a GSO frame without a partial checksum");
        }
        else
        {
            InvariantViolation.Check(gso is null, "a GSO extra on a frame the tap did not mark GSO");
        }
        bool needsCsum = (h.Flags & VirtioNetHeader.FlagNeedsCsum) != 0;
        if ((flags & NetRxFlags.CsumBlank) != 0)
        {
            bool ipv6 = frame.Length >= 14 && BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == 0x86DD;
            InvariantViolation.Check(needsCsum && (ipv6 ? features.Ipv6CsumOffload : features.Ipv4CsumOffload), "NETRXF_csum_blank the tap did not ask for or the frontend cannot take");
        }
        if (needsCsum)
            InvariantViolation.Check((flags & NetRxFlags.DataValidated) != 0, "a checksummed frame without NETRXF_data_validated");
        // The completed checksum must verify: the data from csum_start, with the new field, plus the
        // pseudo-header sum the field held before, is all ones (one's complement). Only for a field
        // on a 16-bit boundary from csum_start, as TCP's and UDP's are; elsewhere the sum is rotated.
        if (needsCsum && Completed(h, flags) && h.CsumOffset % 2 == 0)
        {
            int start = h.CsumStart;
            uint sum = BinaryPrimitives.ReadUInt16BigEndian(frame[(start + h.CsumOffset)..]);
            for (int i = start; i < got.Count; i += 2)
                sum += (uint)(got[i] << 8 | (i + 1 < got.Count ? got[i + 1] : 0));
            while (sum > 0xFFFF)
                sum = (sum & 0xFFFF) + (sum >> 16);
            InvariantViolation.Check(sum == 0xFFFF, () => $"a completed checksum that does not verify (sum {sum:x4})");
        }
    }

    public override IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        byte[] Frame(int sizeClass, int raw, int flags = 0, int gsoType = 0, int gsoSize = 0, int csumStart = 0, int csumOffset = 0, byte[]? headers = null)
        {
            var w = new FuzzInputWriter().Byte(sizeClass).UInt16(raw).Byte(flags).Byte(gsoType).UInt16(0).UInt16(gsoSize).UInt16(csumStart).UInt16(csumOffset);
            return w.Bytes(headers ?? new byte[HeaderBytes]).ToArray();
        }
        byte[] Tcp(bool ipv6 = false)
        {
            var h = new byte[HeaderBytes];
            h[12] = ipv6 ? (byte)0x86 : (byte)0x08; h[13] = ipv6 ? (byte)0xDD : (byte)0x00;
            if (ipv6) { h[14] = 0x60; h[20] = 6; h[21] = 64; }
            else { h[14] = 0x45; h[22] = 64; h[23] = 6; }
            return h;
        }
        FuzzInputWriter Ring(FuzzInputWriter w, uint start, int requests, int firstId, int firstPage, bool distinct = true)
        {
            w.UInt32(start).Byte(requests);
            for (int i = 0; i < requests; i++)
                w.UInt16(firstId + i).Byte(distinct ? (firstPage + i) % WritablePages : 0).UInt16(0);
            return w;
        }
        FuzzInputWriter Head(int config, int config2, byte[][] frames)
        {
            var w = new FuzzInputWriter().Byte(config).Byte(config2).Byte(0).Byte(frames.Length);
            foreach (byte[] f in frames) w.Bytes(f);
            return w;
        }
        byte[] Input(int config, int config2, byte[][] frames, uint start, int requests, bool distinct = true) =>
            Ring(Head(config, config2, frames), start, requests, 100, 0, distinct).Byte(0).ToArray();
        // Two queues with a key and a table that sends even entries to queue 0, odd ones to queue 1.
        byte[] TwoQueues(int config, byte[][] frames)
        {
            var w = Ring(Head(config, 1, frames), 0, 24, 100, 0).Byte(3);
            for (int i = 0; i < Toeplitz.MaxKeyLength; i++) w.Byte(0x6D + i * 29);
            w.Byte(7);
            for (int i = 0; i < 8; i++) w.Byte(i % 2);
            return Ring(w, 0xFFFF_FFF8, 24, 300, 24).ToArray();
        }
        // A TCP/IPv4 flow of its own: source address and port differ per flow, lengths are consistent.
        byte[] Flow(int flow, int total)
        {
            byte[] h = Tcp();
            BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(16), (ushort)(total - 14));
            h[26] = 10; h[29] = (byte)(flow + 1); h[30] = 10; h[33] = 200;
            BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(34), (ushort)(1000 + flow * 7));
            BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(36), 80);
            h[46] = 0x50;
            return h;
        }
        const int Sg = 1, GsoV4 = 2, GsoV6 = 4, Csum4 = 8, Csum6 = 16, Stall = 0x40, Bogus = 0x80;
        const int GsoV4Byte = 100, GsoV6Byte = 170, NeedsCsum = 1;
        yield return ("small-frames", Input(Csum4, 0, [Frame(0, 50), Frame(1, 1500), Frame(0, 10)], 0, 8));
        yield return ("gso-tcpv4-64k", Input(Sg | GsoV4 | Csum4, 0, [Frame(3, 65000, NeedsCsum, GsoV4Byte, 1448, 34, 16, Tcp())], 0xFFFF_FFF0, 40));
        yield return ("gso-tcpv6-hash", Input(Sg | GsoV6 | Csum6, 1, [Frame(1, 9000, NeedsCsum, GsoV6Byte, 1440, 54, 16, Tcp(ipv6: true))], 5, 40));
        yield return ("csum-completed", Input(Sg, 0, [Frame(1, 1400, NeedsCsum, 0, 0, 34, 16, Tcp()), Frame(1, 300, NeedsCsum, 0, 0, 34, 6)], 0, 4));
        yield return ("gso-refused", Input(Sg | Csum4 | GsoV6, 0, [Frame(3, 9000, NeedsCsum, GsoV4Byte, 1448, 34, 16, Tcp()), Frame(0, 40)], 0, 6));
        yield return ("no-sg", Input(Csum4, 0, [Frame(3, 5000), Frame(0, 40)], 0, 6));
        // 65599 bytes is the most a record holds (0xFFFF + 64); one byte more and tun truncates it.
        yield return ("too-big", Input(Sg, 0, [Frame(2, 5599), Frame(2, 5600), Frame(2, 5699), Frame(0, 20)], 0, 60));
        yield return ("too-few-slots-stall", Input(Sg | Stall, 2, [Frame(3, 30000), Frame(0, 60)], 0, 3));
        yield return ("reused-and-bad-grefs", Input(Sg, 0, [Frame(1, 1500), Frame(3, 9000)], 0, 6, distinct: false));
        yield return ("bogus-req-prod", Input(Bogus, 0, [Frame(0, 60)], 0, 1));
        yield return ("two-queues-steered", TwoQueues(Sg | Csum4, [.. Enumerable.Range(0, 8).Select(i => Frame(1, 300 + i, headers: Flow(i, 300 + i)))]));
    }
}
