using System.Runtime.CompilerServices;

namespace XenBackends.Rings.Blkif;

/// <summary>
/// Turns a private copy of a blkif ring slot into a <see cref="BlkifRequest"/>. The input is
/// already out of shared memory, so reading its fields more than once is safe; like Linux's
/// blkif_get_x86_*_req it copies only what the operation defines, never more than the fixed arrays.
/// </summary>
public static class BlkifDecoder
{
    public static void Decode(in BlkifX86_64Request slot, out BlkifRequest request)
    {
        request = default;
        request.Operation = slot.Operation;
        switch (slot.Operation)
        {
            case BlkifOp.Read or BlkifOp.Write or BlkifOp.WriteBarrier or BlkifOp.FlushDiskCache:
                DecodeDirect(slot.NrSegments, slot.Handle, slot.Id, slot.SectorNumber, in slot.Seg, ref request);
                break;
            case BlkifOp.Discard:
                ref readonly BlkifX86_64RequestDiscard discard = ref Unsafe.As<BlkifX86_64Request, BlkifX86_64RequestDiscard>(ref Unsafe.AsRef(in slot));
                DecodeDiscard(discard.Flag, discard.Handle, discard.Id, discard.SectorNumber, discard.NrSectors, ref request);
                break;
            case BlkifOp.Indirect:
                ref readonly BlkifX86_64RequestIndirect indirect = ref Unsafe.As<BlkifX86_64Request, BlkifX86_64RequestIndirect>(ref Unsafe.AsRef(in slot));
                DecodeIndirect(indirect.IndirectOp, indirect.NrSegments, indirect.Handle, indirect.Id, indirect.SectorNumber, in indirect.IndirectGrefs, ref request);
                break;
            default:
                request.Id = slot.Id;
                request.Status = BlkifRequestStatus.UnknownOperation;
                break;
        }
    }

    public static void Decode(in BlkifX86_32Request slot, out BlkifRequest request)
    {
        request = default;
        request.Operation = slot.Operation;
        switch (slot.Operation)
        {
            case BlkifOp.Read or BlkifOp.Write or BlkifOp.WriteBarrier or BlkifOp.FlushDiskCache:
                DecodeDirect(slot.NrSegments, slot.Handle, slot.Id, slot.SectorNumber, in slot.Seg, ref request);
                break;
            case BlkifOp.Discard:
                ref readonly BlkifX86_32RequestDiscard discard = ref Unsafe.As<BlkifX86_32Request, BlkifX86_32RequestDiscard>(ref Unsafe.AsRef(in slot));
                DecodeDiscard(discard.Flag, discard.Handle, discard.Id, discard.SectorNumber, discard.NrSectors, ref request);
                break;
            case BlkifOp.Indirect:
                ref readonly BlkifX86_32RequestIndirect indirect = ref Unsafe.As<BlkifX86_32Request, BlkifX86_32RequestIndirect>(ref Unsafe.AsRef(in slot));
                DecodeIndirect(indirect.IndirectOp, indirect.NrSegments, indirect.Handle, indirect.Id, indirect.SectorNumber, in indirect.IndirectGrefs, ref request);
                break;
            default:
                request.Id = slot.Id;
                request.Status = BlkifRequestStatus.UnknownOperation;
                break;
        }
    }

    private static void DecodeDirect(byte nrSegments, ushort handle, ulong id, ulong sector, in BlkifSegmentArray seg, ref BlkifRequest request)
    {
        request.NrSegments = nrSegments;
        request.Handle = handle;
        request.Id = id;
        request.SectorNumber = sector;
        int copy = Math.Min((int)nrSegments, BlkifLimits.MaxSegmentsPerRequest);
        for (int i = 0; i < copy; i++)
            request.Segments[i] = seg[i];
        if (nrSegments > BlkifLimits.MaxSegmentsPerRequest)
            request.Status = BlkifRequestStatus.TooManySegments;
    }

    private static void DecodeDiscard(byte flag, ushort handle, ulong id, ulong sector, ulong nrSectors, ref BlkifRequest request)
    {
        request.DiscardFlag = flag;
        request.Handle = handle;
        request.Id = id;
        request.SectorNumber = sector;
        request.NrSectors = nrSectors;
    }

    private static void DecodeIndirect(byte indirectOp, ushort nrSegments, ushort handle, ulong id, ulong sector, in BlkifIndirectGrefArray grefs, ref BlkifRequest request)
    {
        request.IndirectOp = indirectOp;
        request.NrSegments = nrSegments;
        request.Handle = handle;
        request.Id = id;
        request.SectorNumber = sector;
        int pages = BlkifRequest.IndirectPagesFor(nrSegments);
        int copy = Math.Min(pages, BlkifLimits.MaxIndirectPagesPerRequest);
        for (int i = 0; i < copy; i++)
            request.IndirectGrefs[i] = grefs[i];
        request.NrIndirectPages = (byte)copy;
        if (indirectOp is not (BlkifOp.Read or BlkifOp.Write))
            request.Status = BlkifRequestStatus.BadIndirectOperation;
        else if (pages > BlkifLimits.MaxIndirectPagesPerRequest)
            request.Status = BlkifRequestStatus.TooManyIndirectPages;
    }
}
