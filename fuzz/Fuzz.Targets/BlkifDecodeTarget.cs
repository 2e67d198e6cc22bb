using System.Buffers.Binary;
using System.Runtime.InteropServices;
using XenBackends.Rings;
using XenBackends.Rings.Blkif;

namespace XenBackends.Fuzz;

/// <summary>
/// Target 1, blkif-decode: one ring slot of either ABI through <see cref="BlkifDecoder"/> and through
/// a real <see cref="BackRing"/> (RING_COPY_REQUEST, then decode of the private copy), checked field
/// by field against io/blkif.h read independently from the raw bytes; then the response written
/// into the same slot must carry exactly id, operation and status with every other byte zero
/// (XSA-216).
/// Input: abi (bit 0), start index (u32), the slot's bytes.
/// </summary>
internal sealed class BlkifDecodeTarget : FuzzTarget
{
    private readonly UnmanagedMemory _page = UnmanagedMemory.AllocatePages(1);

    public override string Name => "blkif-decode";

    protected override void Execute(ReadOnlySpan<byte> data)
    {
        var input = new FuzzInput(data);
        BlkifAbi abi = (input.Byte() & 1) == 0 ? BlkifAbi.X86_64 : BlkifAbi.X86_32;
        uint start = input.UInt32();
        RingSlotLayout layout = BlkifProtocol.Layout(abi);
        Span<byte> slot = stackalloc byte[layout.RequestSize];
        input.Bytes(slot);

        BlkifRequest direct;
        if (abi == BlkifAbi.X86_64)
            BlkifDecoder.Decode(MemoryMarshal.Read<BlkifX86_64Request>(slot), out direct);
        else
            BlkifDecoder.Decode(MemoryMarshal.Read<BlkifX86_32Request>(slot), out direct);
        CheckAgainstSpec(abi, slot, direct);

        // The same slot through a shared ring at an arbitrary (wrapping) index.
        Span<byte> page = _page.Span;
        page.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(page[SharedRing.ReqProdOffset..], start + 1);
        BinaryPrimitives.WriteUInt32LittleEndian(page[SharedRing.RspProdOffset..], start);
        BinaryPrimitives.WriteUInt32LittleEndian(page[SharedRing.RspEventOffset..], start + 1);
        var ring = BackRing.Attach(_page, layout, start);
        int at = SharedRing.HeaderSize + (int)(start & (ring.Size - 1)) * layout.SlotSize;
        slot.CopyTo(page[at..]);
        RingRead read = ring.TryConsumeBlkifRequest(abi, out BlkifRequest viaRing);
        InvariantViolation.Check(read == RingRead.Item, $"a ring with one request read {read}");
        InvariantViolation.Check(Bytes(ref viaRing).SequenceEqual(Bytes(ref direct)), "decoding through the ring differs from decoding the slot");
        InvariantViolation.Check(ring.TryConsumeBlkifRequest(abi, out _) == RingRead.Empty, "a second request appeared on a ring with one");

        short status = viaRing.RejectionStatus;
        InvariantViolation.Check(status is BlkifRsp.Okay or BlkifRsp.Error or BlkifRsp.EOpNotSupp, $"rejection status {status}");
        InvariantViolation.Check((status == BlkifRsp.Okay) == viaRing.IsValid, "OKAY rejection status for an invalid request, or the reverse");
        ring.PutBlkifResponse(viaRing.Id, viaRing.Operation, status);
        ring.PushResponsesAndCheckNotify();
        Span<byte> response = page.Slice(at, layout.ResponseSize);
        InvariantViolation.Check(BinaryPrimitives.ReadUInt64LittleEndian(response) == viaRing.Id, "response id");
        InvariantViolation.Check(response[8] == viaRing.Operation, "response operation");
        InvariantViolation.Check(BinaryPrimitives.ReadInt16LittleEndian(response[10..]) == status, "response status");
        InvariantViolation.Check(response[9] == 0 && !response[12..].ContainsAnyExcept((byte)0), "response padding is not zero (XSA-216)");
        InvariantViolation.Check(BinaryPrimitives.ReadUInt32LittleEndian(page[SharedRing.RspProdOffset..]) == start + 1, "rsp_prod not published");
    }

    private static ReadOnlySpan<byte> Bytes(ref BlkifRequest r) => MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref r, 1));

    /// <summary>io/blkif.h's field offsets, read from the raw bytes without the product's structs.</summary>
    private static void CheckAgainstSpec(BlkifAbi abi, ReadOnlySpan<byte> slot, in BlkifRequest r)
    {
        bool x64 = abi == BlkifAbi.X86_64;
        int id = x64 ? 8 : 4, sector = x64 ? 16 : 12;
        byte op = slot[0];
        InvariantViolation.Check(r.Operation == op, "operation not echoed");
        InvariantViolation.Check(r.Id == BinaryPrimitives.ReadUInt64LittleEndian(slot[id..]), "id not decoded (it is always echoed)");
        switch (op)
        {
            case BlkifOp.Read or BlkifOp.Write or BlkifOp.WriteBarrier or BlkifOp.FlushDiskCache:
            {
                int nr = slot[1];
                int segs = x64 ? 24 : 20;
                InvariantViolation.Check(r.NrSegments == nr, "nr_segments");
                InvariantViolation.Check(r.Handle == BinaryPrimitives.ReadUInt16LittleEndian(slot[2..]), "handle");
                InvariantViolation.Check(r.SectorNumber == BinaryPrimitives.ReadUInt64LittleEndian(slot[sector..]), "sector_number");
                for (int i = 0; i < BlkifLimits.MaxSegmentsPerRequest; i++)
                {
                    BlkifRequestSegment s = r.Segments[i];
                    ReadOnlySpan<byte> raw = slot.Slice(segs + i * 8, 8);
                    bool copied = i < nr;
                    InvariantViolation.Check(s.Gref == (copied ? BinaryPrimitives.ReadUInt32LittleEndian(raw) : 0), $"segment {i} gref");
                    InvariantViolation.Check(s.FirstSect == (copied ? raw[4] : 0) && s.LastSect == (copied ? raw[5] : 0), $"segment {i} sectors");
                }
                var expected = nr > BlkifLimits.MaxSegmentsPerRequest ? BlkifRequestStatus.TooManySegments : BlkifRequestStatus.Valid;
                InvariantViolation.Check(r.Status == expected, $"direct request with {nr} segments decoded as {r.Status}");
                InvariantViolation.Check(r.NrIndirectPages == 0 && r.NrSectors == 0, "indirect/discard fields set on a direct request");
                break;
            }
            case BlkifOp.Discard:
                InvariantViolation.Check(r.DiscardFlag == slot[1], "discard flag");
                InvariantViolation.Check(r.Handle == BinaryPrimitives.ReadUInt16LittleEndian(slot[2..]), "handle");
                InvariantViolation.Check(r.SectorNumber == BinaryPrimitives.ReadUInt64LittleEndian(slot[sector..]), "sector_number");
                InvariantViolation.Check(r.NrSectors == BinaryPrimitives.ReadUInt64LittleEndian(slot[(sector + 8)..]), "nr_sectors");
                InvariantViolation.Check(r.Status == BlkifRequestStatus.Valid && r.NrSegments == 0, "discard decoded as " + r.Status);
                break;
            case BlkifOp.Indirect:
            {
                int nr = BinaryPrimitives.ReadUInt16LittleEndian(slot[2..]);
                int pages = (nr + 511) / 512;
                int grefs = x64 ? 28 : 24;
                InvariantViolation.Check(r.IndirectOp == slot[1] && r.NrSegments == nr, "indirect_op / nr_segments");
                InvariantViolation.Check(r.Handle == BinaryPrimitives.ReadUInt16LittleEndian(slot[(x64 ? 24 : 20)..]), "indirect handle");
                InvariantViolation.Check(r.SectorNumber == BinaryPrimitives.ReadUInt64LittleEndian(slot[sector..]), "sector_number");
                InvariantViolation.Check(r.NrIndirectPages == Math.Min(pages, BlkifLimits.MaxIndirectPagesPerRequest), $"{r.NrIndirectPages} indirect pages for {nr} segments");
                for (int i = 0; i < BlkifLimits.MaxIndirectPagesPerRequest; i++)
                {
                    uint expectedRef = i < r.NrIndirectPages ? BinaryPrimitives.ReadUInt32LittleEndian(slot[(grefs + i * 4)..]) : 0;
                    InvariantViolation.Check(r.IndirectGrefs[i] == expectedRef, $"indirect gref {i}");
                }
                var expected = slot[1] is not (BlkifOp.Read or BlkifOp.Write) ? BlkifRequestStatus.BadIndirectOperation
                    : pages > BlkifLimits.MaxIndirectPagesPerRequest ? BlkifRequestStatus.TooManyIndirectPages
                    : BlkifRequestStatus.Valid;
                InvariantViolation.Check(r.Status == expected, $"indirect op {slot[1]} with {nr} segments decoded as {r.Status}");
                break;
            }
            default:
                InvariantViolation.Check(r.Status == BlkifRequestStatus.UnknownOperation, $"operation {op} decoded as {r.Status}");
                InvariantViolation.Check(r.NrSegments == 0 && r.SectorNumber == 0 && r.Handle == 0, "an unknown operation's fields were read");
                break;
        }
    }

    public override IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        foreach (BlkifAbi abi in new[] { BlkifAbi.X86_64, BlkifAbi.X86_32 })
        {
            bool x64 = abi == BlkifAbi.X86_64;
            int size = BlkifProtocol.Layout(abi).RequestSize;
            string a = x64 ? "64" : "32";
            int id = x64 ? 8 : 4, sector = x64 ? 16 : 12;
            byte[] Slot(Action<byte[]> fill)
            {
                var s = new byte[size];
                fill(s);
                return new FuzzInputWriter().Byte(x64 ? 0 : 1).UInt32(x64 ? 0u : 0xFFFF_FFFFu).Bytes(s).ToArray();
            }
            yield return ($"read-{a}", Slot(s =>
            {
                s[0] = BlkifOp.Read; s[1] = 2;
                FuzzInputWriter.Put(s, id, 0x1234, 8); FuzzInputWriter.Put(s, sector, 64, 8);
                int segs = x64 ? 24 : 20;
                FuzzInputWriter.Put(s, segs, 9, 4); s[segs + 5] = 7;
                FuzzInputWriter.Put(s, segs + 8, 10, 4); s[segs + 12] = 0; s[segs + 13] = 3;
            }));
            yield return ($"flush-empty-{a}", Slot(s => { s[0] = BlkifOp.FlushDiskCache; FuzzInputWriter.Put(s, sector, ulong.MaxValue, 8); }));
            yield return ($"discard-{a}", Slot(s => { s[0] = BlkifOp.Discard; s[1] = 1; FuzzInputWriter.Put(s, sector, 8, 8); FuzzInputWriter.Put(s, sector + 8, 16, 8); }));
            yield return ($"indirect-{a}", Slot(s =>
            {
                s[0] = BlkifOp.Indirect; s[1] = BlkifOp.Write; FuzzInputWriter.Put(s, 2, 600, 2);
                FuzzInputWriter.Put(s, id, 77, 8);
                int grefs = x64 ? 28 : 24;
                FuzzInputWriter.Put(s, grefs, 11, 4); FuzzInputWriter.Put(s, grefs + 4, 12, 4);
            }));
            yield return ($"unknown-op-{a}", Slot(s => { s[0] = BlkifOp.Reserved1; s[1] = 0xFF; FuzzInputWriter.Put(s, id, 5, 8); }));
        }
    }
}
