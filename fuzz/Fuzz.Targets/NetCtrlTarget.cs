using System.Buffers.Binary;
using XenBackends.Backend.Net.Control;
using XenBackends.Rings;
using XenBackends.Rings.Netif;

namespace XenBackends.Fuzz;

/// <summary>
/// Target 4, net-ctrl: the real control ring (<see cref="CtrlRing"/>, never started; served on this
/// thread) and its <see cref="CtrlRequestProcessor"/>, over a ring page, a producer index and the
/// key/mapping pages the input writes. Grant refs are folded onto the guest's pages; lengths and
/// offsets are folded near the interesting bounds (top bit set: kept raw).
/// Invariants: no exception; fatal only for a bogus req_prod (refused at attach or on serve);
/// otherwise every request answered in order with its id and type, a netif.h status, unknown types
/// NOT_SUPPORTED; a request that did not succeed leaves the published settings untouched
/// (XSA-270); the settings always hold an algorithm the backend knows, a key of at most 40 bytes, a
/// mapping of at most 128 entries each naming an existing queue; a successful SET_HASH_KEY or
/// SET_HASH_MAPPING published exactly the bytes of the guest's page.
/// </summary>
internal sealed class NetCtrlTarget : FuzzTarget
{
    private const int PageSize = 4096;
    private readonly GuestWorld _world = new(16);
    private readonly (uint Gref, uint Frame) _ring, _data, _readOnly;
    private readonly uint[] _refs;

    public NetCtrlTarget()
    {
        _ring = _world.GrantPage(readOnly: false);
        _data = _world.GrantPage(readOnly: true);
        _readOnly = _world.GrantPage(readOnly: true);
        _refs = [_data.Gref, _readOnly.Gref, 0, 5000];
    }

    public override string Name => "net-ctrl";

    protected override void Execute(ReadOnlySpan<byte> data)
    {
        var input = new FuzzInput(data);
        byte config = input.Byte();
        int numQueues = 1 + (config & 7);
        bool bogus = (config & 0x80) != 0;
        uint start = input.UInt32();
        Span<byte> page = _world.Page(_data.Frame);
        int patternLength = 4 * (1 + input.Byte() % 64);
        Span<byte> pattern = stackalloc byte[patternLength];
        input.Bytes(pattern);
        for (int at = 0; at < PageSize; at += patternLength)
            pattern[..Math.Min(patternLength, PageSize - at)].CopyTo(page[at..]);
        GuestWorld.Fill(_world.Page(_readOnly.Frame), 3);

        RingSlotLayout layout = NetifRings.Ctrl;
        uint size = layout.RingSize(PageSize);
        Span<byte> ring = _world.Page(_ring.Frame);
        ring.Clear();
        RingPage.Put(ring, SharedRing.ReqEventOffset, start + 1);
        RingPage.Put(ring, SharedRing.RspProdOffset, start);
        RingPage.Put(ring, SharedRing.RspEventOffset, start + 1);
        int n = input.Byte() % ((int)size + 1);
        var requests = new byte[n][];
        for (int i = 0; i < n; i++)
        {
            Span<byte> slot = ring.Slice(SharedRing.HeaderSize + (int)((start + (uint)i) & (size - 1)) * layout.SlotSize, layout.RequestSize);
            input.Bytes(slot);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(slot[2..]);
            if (type is NetifCtrlType.SetHashKey or NetifCtrlType.SetHashMapping)
                Fold(slot, 4, v => _refs[v % (uint)_refs.Length]);
            if (type == NetifCtrlType.SetHashKey)
                Fold(slot, 8, v => (v & 0x8000_0000) != 0 ? v : v % 48);
            if (type == NetifCtrlType.SetHashMapping)
            {
                Fold(slot, 8, v => (v & 0x8000_0000) != 0 ? v : v % 1100);
                Fold(slot, 12, v => (v & 0x8000_0000) != 0 ? v : v % 160);
            }
            if (type == NetifCtrlType.SetHashMappingSize)
                Fold(slot, 4, v => (v & 0x8000_0000) != 0 ? v : v % 160);
            requests[i] = slot.ToArray();
        }
        uint published = bogus ? start + size + 1 + input.Byte() : start + (uint)n;
        RingPage.Put(ring, SharedRing.ReqProdOffset, published);

        int descriptors = GuestWorld.OpenDescriptors();
        var (guestPort, events, port) = _world.BindChannel();
        var processor = new CtrlRequestProcessor(GuestWorld.Domid, _world.Grants, numQueues);
        var published_ = new List<RxHashSettings>();
        processor.Changed += published_.Add;
        string? fatal = null;
        CtrlRing ctrl;
        try
        {
            var memory = _world.Grants.Map(GuestWorld.Domid, [_ring.Gref], writable: true);
            try
            {
                ctrl = new CtrlRing(GuestWorld.Domid, memory, events, port, processor, reason => fatal = reason);
            }
            catch
            {
                memory.Dispose();
                throw;
            }
        }
        catch (InvalidDataException) when (bogus)
        {
            // Refused at attach: a ring that already claims more requests than slots (documented).
            events.Dispose();
            _world.CloseGuestPort(guestPort);
            GuestWorld.CheckDescriptors(descriptors);
            return;
        }
        catch
        {
            events.Dispose();
            _world.CloseGuestPort(guestPort);
            throw;
        }
        bool passed = false;
        try
        {
            bool ok = ctrl.ServeOnCallerThread();
            InvariantViolation.Check(ok == (fatal is null), "Serve's result and the fatal callback disagree");
            if (bogus)
                InvariantViolation.Check(fatal is not null, "a bogus req_prod did not make the control ring fatal");
            else
            {
                InvariantViolation.Check(fatal is null, () => $"fatal on a well-formed ring: {fatal}");
                CheckResponses(ring, size, start, requests, numQueues, published_, processor.Settings);
            }
            passed = true;
        }
        finally
        {
            ctrl.Dispose();
            _world.CloseGuestPort(guestPort);
            if (passed)
                GuestWorld.CheckDescriptors(descriptors);
        }
    }

    private void CheckResponses(Span<byte> ring, uint size, uint start, byte[][] requests, int numQueues, List<RxHashSettings> published, RxHashSettings final)
    {
        uint rspProd = BinaryPrimitives.ReadUInt32LittleEndian(ring[SharedRing.RspProdOffset..]);
        InvariantViolation.Check(rspProd == start + (uint)requests.Length, () => $"{rspProd - start} responses to {requests.Length} requests");
        RxHashSettings current = RxHashSettings.Initial;
        int changes = 0;
        for (int i = 0; i < requests.Length; i++)
        {
            ReadOnlySpan<byte> rsp = ring.Slice(SharedRing.HeaderSize + (int)((start + (uint)i) & (size - 1)) * 16, 12);
            ReadOnlySpan<byte> req = requests[i];
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(req[2..]);
            uint status = BinaryPrimitives.ReadUInt32LittleEndian(rsp[4..]);
            uint data = BinaryPrimitives.ReadUInt32LittleEndian(rsp[8..]);
            InvariantViolation.Check(rsp[..4].SequenceEqual(req[..4]), "response id/type do not echo the request");
            InvariantViolation.Check(status <= NetifCtrlStatus.BufferOverflow, () => $"status {status}");
            bool setter = type is NetifCtrlType.SetHashAlgorithm or NetifCtrlType.SetHashFlags or NetifCtrlType.SetHashKey
                or NetifCtrlType.SetHashMappingSize or NetifCtrlType.SetHashMapping;
            bool known = setter || type is NetifCtrlType.GetHashFlags or NetifCtrlType.GetHashMappingSize;
            if (!known)
                InvariantViolation.Check(status == NetifCtrlStatus.NotSupported, () => $"type {type} answered {status}");
            if (type == NetifCtrlType.GetHashMappingSize)
                InvariantViolation.Check(status == NetifCtrlStatus.Success && data == RxHashSettings.MaxMappingSize, "GET_HASH_MAPPING_SIZE");
            if (type == NetifCtrlType.GetHashFlags)
                InvariantViolation.Check((status == NetifCtrlStatus.Success) == (current.Algorithm != NetifCtrlHashAlgorithm.None)
                    && (status != NetifCtrlStatus.Success || data == RxHashSettings.SupportedTypes), "GET_HASH_FLAGS");
            if (setter && status == NetifCtrlStatus.Success)
            {
                InvariantViolation.Check(changes < published.Count, "a successful set published nothing");
                RxHashSettings next = published[changes++];
                CheckSettings(next, numQueues);
                CheckSetResult(type, req, current, next);
                current = next;
            }
            else if (type is not (NetifCtrlType.GetHashFlags or NetifCtrlType.GetHashMappingSize))
            {
                InvariantViolation.Check(data == 0, "a set answered data");
            }
        }
        InvariantViolation.Check(changes == published.Count, () => $"{published.Count} settings published for {changes} successful requests (a failed request changed the settings)");
        InvariantViolation.Check(ReferenceEquals(final, current), "the settings the data path sees are not the last published ones");
    }

    private static void CheckSettings(RxHashSettings s, int numQueues)
    {
        InvariantViolation.Check(s.Algorithm is NetifCtrlHashAlgorithm.None or NetifCtrlHashAlgorithm.Toeplitz, "algorithm");
        InvariantViolation.Check((s.Types & ~RxHashSettings.SupportedTypes) == 0, "hash types");
        InvariantViolation.Check(s.Key.Length <= Toeplitz.MaxKeyLength, "key length");
        InvariantViolation.Check(s.Mapping.Count <= RxHashSettings.MaxMappingSize, "mapping size");
        InvariantViolation.Check(s.Mapping.All(q => q < (uint)numQueues), () => $"a mapping entry names a queue >= {numQueues} (XSA-270)");
    }

    private void CheckSetResult(ushort type, ReadOnlySpan<byte> req, RxHashSettings before, RxHashSettings after)
    {
        uint d0 = BinaryPrimitives.ReadUInt32LittleEndian(req[4..]);
        uint d1 = BinaryPrimitives.ReadUInt32LittleEndian(req[8..]);
        uint d2 = BinaryPrimitives.ReadUInt32LittleEndian(req[12..]);
        ReadOnlySpan<byte> page = _world.Page(_data.Frame);
        switch (type)
        {
            case NetifCtrlType.SetHashKey:
                InvariantViolation.Check(d1 == 0 || d0 == _data.Gref || d0 == _readOnly.Gref, "a key copied from a ref that is no grant");
                ReadOnlySpan<byte> source = d0 == _readOnly.Gref ? _world.Page(_readOnly.Frame) : page;
                // netif.h: octets the frontend did not set are zero (the key is always 40 bytes).
                InvariantViolation.Check(after.Key.Length == Toeplitz.MaxKeyLength && after.Key.Span[..(int)d1].SequenceEqual(source[..(int)d1])
                    && !after.Key.Span[(int)d1..].ContainsAnyExcept((byte)0), "the published key is not the guest's bytes, zero-extended");
                break;
            case NetifCtrlType.SetHashMapping:
                InvariantViolation.Check(after.Mapping.Count == before.Mapping.Count && (ulong)d2 + d1 <= (ulong)before.Mapping.Count, "mapping bounds");
                ReadOnlySpan<byte> entries = d0 == _readOnly.Gref ? _world.Page(_readOnly.Frame) : page;
                for (int i = 0; i < after.Mapping.Count; i++)
                {
                    uint expected = i >= d2 && i < d2 + d1 ? BinaryPrimitives.ReadUInt32LittleEndian(entries[((i - (int)d2) * 4)..]) : before.Mapping[i];
                    InvariantViolation.Check(after.Mapping[i] == expected, () => $"mapping entry {i}");
                }
                break;
            case NetifCtrlType.SetHashMappingSize:
                InvariantViolation.Check(after.Mapping.Count == d0 && after.Mapping.All(q => q == 0), "mapping size");
                break;
        }
    }

    private static void Fold(Span<byte> slot, int offset, Func<uint, uint> fold) =>
        BinaryPrimitives.WriteUInt32LittleEndian(slot[offset..], fold(BinaryPrimitives.ReadUInt32LittleEndian(slot[offset..])));

    public override IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        byte[] Req(int id, int type, uint d0 = 0, uint d1 = 0, uint d2 = 0) =>
            new FuzzInputWriter().UInt16(id).UInt16(type).UInt32(d0).UInt32(d1).UInt32(d2).ToArray();
        byte[] Input(int config, uint start, byte[] pattern, params byte[][] requests)
        {
            var w = new FuzzInputWriter().Byte(config).UInt32(start).Byte(pattern.Length / 4 - 1).Bytes(pattern).Byte(requests.Length);
            foreach (byte[] r in requests) w.Bytes(r);
            return w.ToArray();
        }
        byte[] key = [.. Enumerable.Range(0, 40).Select(i => (byte)(i * 13 + 1))];
        byte[] queues = new FuzzInputWriter().UInt32(0).UInt32(1).UInt32(2).UInt32(3).ToArray();
        yield return ("toeplitz-setup", Input(3, 0, key,
            Req(1, NetifCtrlType.SetHashAlgorithm, NetifCtrlHashAlgorithm.Toeplitz), Req(2, NetifCtrlType.GetHashFlags),
            Req(3, NetifCtrlType.SetHashFlags, RxHashSettings.SupportedTypes), Req(4, NetifCtrlType.SetHashKey, 0, 40),
            Req(5, NetifCtrlType.GetHashMappingSize), Req(6, NetifCtrlType.SetHashMappingSize, 64), Req(7, NetifCtrlType.SetHashKey, 0, 0)));
        yield return ("mapping", Input(3, 0xFFFF_FFFF, queues,
            Req(1, NetifCtrlType.SetHashMappingSize, 128), Req(2, NetifCtrlType.SetHashMapping, 0, 64, 0), Req(3, NetifCtrlType.SetHashMapping, 0, 64, 64),
            Req(4, NetifCtrlType.SetHashMapping, 0, 8, 124)));
        yield return ("xsa270-bounds", Input(1, 5, queues,
            Req(1, NetifCtrlType.SetHashMappingSize, 16), Req(2, NetifCtrlType.SetHashMapping, 0, 0xFFFF_FFFF, 0x8000_0001),
            Req(3, NetifCtrlType.SetHashMapping, 0, 4, 0), Req(4, NetifCtrlType.SetHashMapping, 2, 4, 0), Req(5, NetifCtrlType.SetHashKey, 0, 41)));
        yield return ("unknown-types", Input(0, 0, queues,
            Req(1, NetifCtrlType.Invalid), Req(2, NetifCtrlType.GetGrefMappingSize), Req(3, NetifCtrlType.AddGrefMapping), Req(4, 0xFFFF),
            Req(5, NetifCtrlType.SetHashFlags, 1), Req(6, NetifCtrlType.SetHashAlgorithm, 7)));
        yield return ("bogus-req-prod", Input(0x80, 0, queues, Req(1, NetifCtrlType.GetHashMappingSize)));
    }
}
