using System.Buffers.Binary;
using XenBackends.Rings.Blkif;

namespace XenBackends.SimulatedHost.Hostile;

/// <summary>One segment as the guest writes it: any values, checked by nobody on this side.</summary>
public readonly record struct RawSegment(uint Gref, byte FirstSect, byte LastSect);

/// <summary>
/// A blkif request in the x86_64 slot layout (blkif.h), built field by field so any value, however
/// invalid, can be expressed: nr_segments beyond 11, an indirect op that is not READ/WRITE, segments
/// outside their page. <see cref="Bytes"/> overrides everything with raw slot contents.
/// </summary>
public sealed record RawBlkifRequest
{
    public byte Operation { get; init; }
    public byte NrSegments { get; init; }
    public ushort Handle { get; init; }
    public ulong Id { get; init; }
    public ulong Sector { get; init; }
    public RawSegment[] Segments { get; init; } = [];

    // Indirect (operation 6).
    public byte IndirectOp { get; init; }
    public ushort IndirectNrSegments { get; init; }
    public uint[] IndirectGrefs { get; init; } = [];

    // Discard (operation 5).
    public ulong NrSectors { get; init; }
    public byte DiscardFlag { get; init; }

    /// <summary>Raw slot contents; when set, nothing else is written.</summary>
    public byte[]? Bytes { get; init; }

    public static RawBlkifRequest Direct(byte op, ulong id, ulong sector, params RawSegment[] segments) =>
        new() { Operation = op, Id = id, Sector = sector, NrSegments = (byte)segments.Length, Segments = segments };

    public static RawBlkifRequest Indirect(byte op, ulong id, ulong sector, ushort nrSegments, params uint[] indirectGrefs) =>
        new() { Operation = BlkifOp.Indirect, IndirectOp = op, Id = id, Sector = sector, IndirectNrSegments = nrSegments, IndirectGrefs = indirectGrefs };

    /// <summary>Clears the 112-byte slot and writes the request into it.</summary>
    public void WriteTo(Span<byte> slot)
    {
        slot.Clear();
        if (Bytes is { } raw)
        {
            raw.AsSpan(0, Math.Min(raw.Length, slot.Length)).CopyTo(slot);
            return;
        }
        slot[0] = Operation;
        BinaryPrimitives.WriteUInt64LittleEndian(slot[8..], Id);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[16..], Sector);
        switch (Operation)
        {
            case BlkifOp.Indirect:
                slot[1] = IndirectOp;
                BinaryPrimitives.WriteUInt16LittleEndian(slot[2..], IndirectNrSegments);
                BinaryPrimitives.WriteUInt16LittleEndian(slot[24..], Handle);
                for (int i = 0; i < IndirectGrefs.Length && i < BlkifLimits.MaxIndirectPagesPerRequest; i++)
                    BinaryPrimitives.WriteUInt32LittleEndian(slot[(28 + 4 * i)..], IndirectGrefs[i]);
                break;
            case BlkifOp.Discard:
                slot[1] = DiscardFlag;
                BinaryPrimitives.WriteUInt16LittleEndian(slot[2..], Handle);
                BinaryPrimitives.WriteUInt64LittleEndian(slot[24..], NrSectors);
                break;
            default:
                slot[1] = NrSegments;
                BinaryPrimitives.WriteUInt16LittleEndian(slot[2..], Handle);
                for (int i = 0; i < Segments.Length && i < BlkifLimits.MaxSegmentsPerRequest; i++)
                    WriteSegment(slot[(24 + 8 * i)..], Segments[i]);
                break;
        }
    }

    /// <summary>Writes segments into an indirect page (512 per page, 8 bytes each).</summary>
    public static void WriteIndirectPage(Span<byte> page, ReadOnlySpan<RawSegment> segments)
    {
        page.Clear();
        for (int i = 0; i < segments.Length && i < BlkifLimits.SegmentsPerIndirectPage; i++)
            WriteSegment(page[(8 * i)..], segments[i]);
    }

    private static void WriteSegment(Span<byte> at, RawSegment s)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(at, s.Gref);
        at[4] = s.FirstSect;
        at[5] = s.LastSect;
    }
}
