using System.Buffers.Binary;
using XenBackends.Backend.Net;
using XenBackends.Native.Tap;
using XenBackends.Rings;
using XenBackends.Rings.Netif;

namespace XenBackends.Fuzz;

/// <summary>
/// Target 3, net-tx: the real <see cref="NetQueue"/>'s guest-TX path (never started; its service
/// call runs on this thread) over a tx ring whose slots, producer index and frame pages come from
/// the input: request chains, extra-info slots (GSO, multicast), fragments, checksum flags, and
/// the Ethernet/IP/TCP/UDP headers that checksum and GSO setup parse. Grant refs and offsets are
/// folded onto the guest's granted pages (offset top bit set: kept raw).
/// Invariants: no exception; fatal only with one of netback's documented reasons (section 4.1),
/// and always for a bogus req_prod; otherwise every slot answered once, in order, with its own id,
/// NETIF_RSP_NULL exactly on extra-info slots and OKAY/ERROR elsewhere; every frame on the tap has
/// the length the guest gave, a virtio_net_hdr whose checksum/GSO offsets lie inside the frame, and
/// the bytes of an OKAY-answered chain, in ring order. Also: <see cref="PacketHeaders.TryLocateL4"/>
/// on each candidate frame stays inside it.
/// </summary>
internal sealed class NetTxTarget : FuzzTarget
{
    private const int PageSize = 4096;
    private const int HeaderBytes = 256;

    private static readonly string[] FatalReasons =
    [
        "Impossible number of requests", "Missing extra info", "Invalid extra type", "Asked for ",
        "Malicious frontend", "Cross page boundary", "txreq.offset", "Bad GSO extra",
    ];

    private readonly GuestWorld _world = new(32);
    private readonly (uint Gref, uint Frame) _tx, _rx;
    private readonly (uint Gref, uint Frame)[] _pages;
    private readonly uint[] _refs;
    private readonly Dictionary<uint, uint> _frameOf = [];

    public NetTxTarget()
    {
        _tx = _world.GrantPage(readOnly: false);
        _rx = _world.GrantPage(readOnly: false);
        _pages = [.. Enumerable.Range(0, 4).Select(i => _world.GrantPage(readOnly: i != 3))];
        foreach (var (gref, frame) in _pages)
            _frameOf[gref] = frame;
        _refs = [.. _pages.Select(p => p.Gref), 0, 5000];
    }

    public override string Name => "net-tx";

    private sealed record Slot(ushort Id, bool Extra, byte[] Raw);

    private sealed record Chain(int First, int End, bool Multicast, byte[]? Data, ushort Size);

    protected override void Execute(ReadOnlySpan<byte> data)
    {
        var input = new FuzzInput(data);
        byte config = input.Byte();
        int batch = (config & 3) switch { 0 => 64, 1 => 1, 2 => 3, _ => 16 };
        bool bogus = (config & 0x80) != 0;
        uint start = input.UInt32();
        for (int i = 0; i < _pages.Length; i++)
        {
            Span<byte> page = _world.Page(_pages[i].Frame);
            GuestWorld.Fill(page, 50 + i);
            input.Bytes(page[..HeaderBytes]);
        }
        RingSlotLayout layout = NetifRings.Tx;
        uint size = layout.RingSize(PageSize);
        Span<byte> ring = _world.Page(_tx.Frame);
        ring.Clear();
        _world.Page(_rx.Frame).Clear();
        RingPage.Put(ring, SharedRing.ReqEventOffset, start + 1);
        RingPage.Put(ring, SharedRing.RspProdOffset, start);
        RingPage.Put(ring, SharedRing.RspEventOffset, start + 1);
        Span<byte> rxHeader = _world.Page(_rx.Frame);
        RingPage.Put(rxHeader, SharedRing.ReqEventOffset, 1);
        RingPage.Put(rxHeader, SharedRing.RspEventOffset, 1);

        int n = input.Byte() % (int)size;
        var slots = new List<Slot>(n);
        int extrasLeft = 0;
        bool inChain = false, multicastChain = false;
        for (int i = 0; i < n; i++)
        {
            Span<byte> raw = ring.Slice(SharedRing.HeaderSize + (int)((start + (uint)i) & (size - 1)) * layout.SlotSize, layout.RequestSize);
            input.Bytes(raw);
            // The oracle's own walk of the chain structure (netif.h): extra-info slots follow a
            // first slot with NETTXF_extra_info until one lacks XEN_NETIF_EXTRA_FLAG_MORE.
            bool extra = extrasLeft > 0;
            if (extra)
            {
                extrasLeft = (raw[1] & NetifExtraFlags.More) != 0 ? 1 : 0;
                multicastChain |= IsMulticast(raw[0]);
                // A multicast control request ends with its extras (netback-anchors 4.1 row 6:
                // answered and `continue`d before xenvif_count_requests), so NETTXF_more_data on its
                // first slot links nothing: the next slot is a new first slot.
                if (extrasLeft == 0 && multicastChain)
                    inChain = false;
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(raw, _refs[BinaryPrimitives.ReadUInt32LittleEndian(raw) % (uint)_refs.Length]);
                ushort offset = BinaryPrimitives.ReadUInt16LittleEndian(raw[4..]);
                if ((offset & 0x8000) == 0)
                    BinaryPrimitives.WriteUInt16LittleEndian(raw[4..], (ushort)(offset % PageSize));
                ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(raw[6..]);
                if (!inChain)
                {
                    multicastChain = false;
                    if ((flags & NetTxFlags.ExtraInfo) != 0)
                        extrasLeft = 1;
                }
                inChain = (flags & NetTxFlags.MoreData) != 0;
            }
            slots.Add(new Slot(BinaryPrimitives.ReadUInt16LittleEndian(raw[8..]), extra, raw.ToArray()));
        }
        uint published = bogus ? start + size + 1 + input.Byte() : start + (uint)n;
        RingPage.Put(ring, SharedRing.ReqProdOffset, published);
        using var tap = new RecordingTap { FailMask = input.Byte() };

        int descriptors = GuestWorld.OpenDescriptors();
        string? fatal = null;
        NetQueue queue;
        uint guestPort;
        try
        {
            var vif = new VifShared(new MulticastFilter((config & 4) != 0), null, null);
            (queue, guestPort) = FuzzNetQueue.Open(_world, 0, _tx.Gref, _rx.Gref, tap,
                new NetFrontendFeatures { Sg = true, GsoTcpV4 = true, GsoTcpV6 = true }, new NetQueueOptions { TxBatchPackets = batch, RxQueueBytes = 64 * 1024 },
                vif, reason => fatal = reason);
            vif.Queues = [queue];
        }
        // Refused at attach: a ring that already claims more requests than slots (documented).
        catch (InvalidDataException) when (bogus)
        {
            GuestWorld.CheckDescriptors(descriptors);
            return;
        }
        bool passed = false;
        try
        {
            for (int pass = 0; pass < 64 && queue.ServiceTxOnCallerThread(); pass++)
            {
            }
            if (bogus)
                InvariantViolation.Check(fatal is not null, "a bogus req_prod did not make the queue fatal");
            else if (fatal is not null)
                InvariantViolation.Check(FatalReasons.Any(r => fatal.StartsWith(r, StringComparison.Ordinal)), () => $"fatal for an undocumented reason: {fatal}");
            else
            {
                CheckResponses(ring, size, start, slots, out short[] status);
                CheckFrames(tap.Records, Chains(slots, status));
            }
            passed = true;
        }
        finally
        {
            queue.Dispose();
            _world.CloseGuestPort(guestPort);
            if (passed)
                GuestWorld.CheckDescriptors(descriptors);
        }
    }

    private static void CheckResponses(Span<byte> ring, uint size, uint start, List<Slot> slots, out short[] status)
    {
        uint rspProd = RingPage.Get(ring, SharedRing.RspProdOffset);
        InvariantViolation.Check(rspProd == start + (uint)slots.Count, () => $"{rspProd - start} responses for {slots.Count} slots");
        status = new short[slots.Count];
        for (int i = 0; i < slots.Count; i++)
        {
            ReadOnlySpan<byte> rsp = ring.Slice(SharedRing.HeaderSize + (int)((start + (uint)i) & (size - 1)) * 12, 12);
            ushort id = BinaryPrimitives.ReadUInt16LittleEndian(rsp);
            short s = BinaryPrimitives.ReadInt16LittleEndian(rsp[2..]);
            status[i] = s;
            if (slots[i].Extra)
            {
                InvariantViolation.Check(s == NetifRsp.Null, () => $"extra-info slot {i} answered {s}, not NETIF_RSP_NULL");
                continue;
            }
            InvariantViolation.Check(s is NetifRsp.Okay or NetifRsp.Error, () => $"slot {i} answered {s}");
            InvariantViolation.Check(id == slots[i].Id, () => $"slot {i} answered with id {id}, the request's is {slots[i].Id}");
        }
    }

    /// <summary>Groups the slots into request chains and, for chains answered OKAY throughout, the frame they describe.</summary>
    private List<Chain> Chains(List<Slot> slots, short[] status)
    {
        var chains = new List<Chain>();
        int i = 0;
        while (i < slots.Count)
        {
            int first = i++;
            bool multicast = false;
            while (i < slots.Count && slots[i].Extra)
            {
                multicast |= IsMulticast(slots[i].Raw[0]);
                i++;
            }
            var frags = new List<int>();
            // A multicast control request takes no fragments, whatever its NETTXF_more_data says (row 6).
            bool more = !multicast && (BinaryPrimitives.ReadUInt16LittleEndian(slots[first].Raw.AsSpan(6)) & NetTxFlags.MoreData) != 0;
            while (more && i < slots.Count)
            {
                frags.Add(i);
                more = (BinaryPrimitives.ReadUInt16LittleEndian(slots[i].Raw.AsSpan(6)) & NetTxFlags.MoreData) != 0;
                i++;
            }
            bool okay = Enumerable.Range(first, i - first).All(k => slots[k].Extra || status[k] == NetifRsp.Okay);
            ushort total = BinaryPrimitives.ReadUInt16LittleEndian(slots[first].Raw.AsSpan(10));
            chains.Add(new Chain(first, i, multicast, okay && !multicast ? Gather(slots, first, frags, total) : null, total));
        }
        return chains;
    }

    private static bool IsMulticast(byte extraType) => extraType is NetifExtraType.McastAdd or NetifExtraType.McastDel;

    private byte[]? Gather(List<Slot> slots, int first, List<int> frags, ushort total)
    {
        var data = new List<byte>();
        int firstSize = total - frags.Sum(k => (int)BinaryPrimitives.ReadUInt16LittleEndian(slots[k].Raw.AsSpan(10)));
        if (firstSize < 0 || !Append(data, slots[first].Raw, firstSize))
            return null;
        foreach (int k in frags)
            if (!Append(data, slots[k].Raw, BinaryPrimitives.ReadUInt16LittleEndian(slots[k].Raw.AsSpan(10))))
                return null;
        return [.. data];
    }

    private bool Append(List<byte> data, byte[] raw, int length)
    {
        uint gref = BinaryPrimitives.ReadUInt32LittleEndian(raw);
        int offset = BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(4));
        if (length == 0)
            return true;
        if (!_frameOf.TryGetValue(gref, out uint frame) || offset + length > PageSize)
            return false;
        data.AddRange(_world.Page(frame).Slice(offset, length).ToArray());
        return true;
    }

    private static void CheckFrames(List<byte[]> records, List<Chain> chains)
    {
        int next = 0;
        foreach (byte[] record in records)
        {
            InvariantViolation.Check(record.Length >= VirtioNetHeader.Size + 14, () => $"a {record.Length}-byte record reached the tap");
            var header = VirtioNetHeader.ReadFrom(record);
            ReadOnlySpan<byte> frame = record.AsSpan(VirtioNetHeader.Size);
            int frameLength = frame.Length;
            int csumAt = -1;
            if ((header.Flags & VirtioNetHeader.FlagNeedsCsum) != 0)
            {
                csumAt = header.CsumStart + header.CsumOffset;
                InvariantViolation.Check(csumAt + 2 <= frame.Length, () => $"checksum at {header.CsumStart}+{header.CsumOffset} outside a {frameLength}-byte frame");
            }
            InvariantViolation.Check(header.GsoType is VirtioNetHeader.GsoNone or VirtioNetHeader.GsoTcpV4 or VirtioNetHeader.GsoTcpV6, () => $"gso_type {header.GsoType}");
            if (header.GsoType != VirtioNetHeader.GsoNone)
                InvariantViolation.Check(header.GsoSize > 0 && header.HdrLen <= frame.Length && csumAt >= 0, "GSO header without size, with hdr_len past the frame, or without a partial checksum");
            // The chain this frame came from: the next OKAY chain, in ring order, with the same bytes.
            bool found = false;
            while (next < chains.Count && !found)
            {
                Chain c = chains[next++];
                found = c.Data is { } d && d.Length == frame.Length && SameExceptChecksum(d, frame, csumAt);
            }
            InvariantViolation.Check(found, "a frame reached the tap that is no OKAY-answered chain's data, or out of ring order");
            if (PacketHeaders.TryLocateL4(frame, out L4Location l4))
            {
                InvariantViolation.Check(l4.L3Offset is 14 or 18 && l4.L4Offset > l4.L3Offset, "L3/L4 offsets");
                InvariantViolation.Check(l4.L4Offset + l4.L4HeaderLength <= frame.Length && l4.CsumOffset + 2 <= l4.L4HeaderLength, "L4 header past the frame");
            }
        }
    }

    private static bool SameExceptChecksum(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual, int csumAt)
    {
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i] && (csumAt < 0 || i < csumAt || i >= csumAt + 2))
                return false;
        return true;
    }

    public override IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        byte[] Tcp4(int total, bool ipv6 = false)
        {
            var h = new byte[HeaderBytes];
            h[12] = ipv6 ? (byte)0x86 : (byte)0x08; h[13] = ipv6 ? (byte)0xDD : (byte)0x00;
            if (ipv6)
            {
                h[14] = 0x60; h[20] = 6; h[21] = 64; // next header TCP
                h[54 + 12] = 0x50;
            }
            else
            {
                h[14] = 0x45; h[22] = 64; h[23] = 6; // TCP
                BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(16), (ushort)(total - 14));
                h[34 + 12] = 0x50;
            }
            return h;
        }
        byte[] Udp4()
        {
            var h = new byte[HeaderBytes];
            h[12] = 0x08; h[14] = 0x45; h[23] = 17;
            return h;
        }
        byte[] Req(int pageIndex, int offset, int flags, int id, int size) =>
            new FuzzInputWriter().UInt32((uint)pageIndex).UInt16(offset).UInt16(flags).UInt16(id).UInt16(size).ToArray();
        byte[] Extra(byte type, byte flags, int gsoSize = 0, byte gsoType = 0) =>
            new FuzzInputWriter().Byte(type).Byte(flags).UInt16(gsoSize).Byte(gsoType).Byte(0).UInt16(0).UInt32(0).ToArray();
        byte[] Input(int config, uint start, byte[][] pages, params byte[][] slots)
        {
            var w = new FuzzInputWriter().Byte(config).UInt32(start);
            for (int i = 0; i < 4; i++) w.Bytes(i < pages.Length ? pages[i] : new byte[HeaderBytes]);
            w.Byte(slots.Length);
            foreach (byte[] s in slots) w.Bytes(s);
            return w.Byte(0).ToArray();
        }
        yield return ("single-udp", Input(0, 0, [Udp4()], Req(0, 0, NetTxFlags.DataValidated, 1, 60)));
        yield return ("csum-blank-tcp", Input(0, 0xFFFF_FFFE, [Tcp4(200)], Req(0, 0, NetTxFlags.CsumBlank, 2, 200), Req(1, 100, 0, 3, 90)));
        yield return ("gso-tcpv4-frags", Input(0, 10, [Tcp4(3000), new byte[HeaderBytes], new byte[HeaderBytes]],
            Req(0, 0, NetTxFlags.ExtraInfo | NetTxFlags.MoreData, 4, 3000), Extra(NetifExtraType.Gso, 0, 1448, NetifGsoType.TcpV4),
            Req(1, 0, NetTxFlags.MoreData, 5, 1400), Req(2, 0, 0, 6, 1000)));
        yield return ("gso-tcpv6", Input(1, 0, [Tcp4(400, ipv6: true)],
            Req(0, 0, NetTxFlags.ExtraInfo | NetTxFlags.CsumBlank, 7, 400), Extra(NetifExtraType.Gso, 0, 1000, NetifGsoType.TcpV6)));
        yield return ("multicast", Input(4, 0, [],
            Req(0, 0, NetTxFlags.ExtraInfo, 8, 0), Extra(NetifExtraType.McastAdd, NetifExtraFlags.More), Extra(NetifExtraType.Gso, 0, 0, 0),
            Req(0, 0, NetTxFlags.ExtraInfo, 9, 0), Extra(NetifExtraType.McastDel, 0)));
        // NETTXF_more_data on a multicast control request links nothing: id 19 is a new request with
        // its own extra, ids 20 and 21 the next packet.
        yield return ("multicast-more-data", Input(4, 0, [],
            Req(0, 0, NetTxFlags.ExtraInfo | NetTxFlags.MoreData, 18, 0), Extra(NetifExtraType.McastAdd, 0),
            Req(0, 0, NetTxFlags.ExtraInfo | NetTxFlags.MoreData, 19, 0), Extra(NetifExtraType.McastDel, 0),
            Req(1, 0, NetTxFlags.MoreData, 20, 100), Req(2, 0, 0, 21, 40)));
        yield return ("drops-and-zero-frags", Input(2, 0, [Udp4()],
            Req(0, 0, 0, 10, 10), Req(0, 0, NetTxFlags.MoreData, 11, 100), Req(1, 0, NetTxFlags.MoreData, 12, 0), Req(4, 0, 0, 13, 20),
            Req(0, 4000, 0, 14, 60)));
        yield return ("fatal-cross-page", Input(0, 0, [Udp4()], Req(0, 4090, 0, 15, 100)));
        yield return ("fatal-missing-extra", Input(0, 0, [Udp4()], Req(0, 0, NetTxFlags.ExtraInfo, 16, 100)));
        yield return ("bogus-req-prod", Input(0x80, 0, [Udp4()], Req(0, 0, 0, 17, 100)));
    }
}
