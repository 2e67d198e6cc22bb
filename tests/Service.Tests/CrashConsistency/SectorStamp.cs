using System.Buffers.Binary;

namespace XenBackends.Service.Tests.CrashConsistency;

/// <summary>
/// Self-describing sector contents: every 512-byte sector a write puts down carries its own LBA, the
/// write's version and a fill derived from both. Reading an image back therefore says, sector by
/// sector, which write it holds, or that it holds nothing we ever wrote (torn or misplaced data).
/// </summary>
internal static class SectorStamp
{
    public const int SectorSize = 512;
    private const ulong Magic = 0x5842_4352_4153_4821; // "XBCRASH!"

    public static void Fill(Span<byte> sector, long lba, long version)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(sector, Magic);
        BinaryPrimitives.WriteInt64LittleEndian(sector[8..], lba);
        BinaryPrimitives.WriteInt64LittleEndian(sector[16..], version);
        ulong state = Seed(lba, version);
        for (int i = 24; i < SectorSize; i += 8)
            BinaryPrimitives.WriteUInt64LittleEndian(sector[i..], Next(ref state));
    }

    public enum Kind { Blank, Stamped, Garbage }

    /// <summary>What one sector read back holds: never written (all zero), a write's stamp, or neither.</summary>
    public static Kind Classify(ReadOnlySpan<byte> sector, long lba, out long version)
    {
        version = 0;
        if (!sector.ContainsAnyExcept((byte)0))
            return Kind.Blank;
        if (BinaryPrimitives.ReadUInt64LittleEndian(sector) != Magic || BinaryPrimitives.ReadInt64LittleEndian(sector[8..]) != lba)
            return Kind.Garbage;
        version = BinaryPrimitives.ReadInt64LittleEndian(sector[16..]);
        ulong state = Seed(lba, version);
        for (int i = 24; i < SectorSize; i += 8)
            if (BinaryPrimitives.ReadUInt64LittleEndian(sector[i..]) != Next(ref state))
                return Kind.Garbage;
        return Kind.Stamped;
    }

    private static ulong Seed(long lba, long version) =>
        ((ulong)lba * 0x9E37_79B9_7F4A_7C15UL) ^ ((ulong)version * 0xC2B2_AE3D_27D4_EB4FUL) ^ 0x1234_5678_9ABC_DEF1UL;

    // xorshift64*: cheap, and no two (lba, version) pairs in a run share a stream.
    private static ulong Next(ref ulong x)
    {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        return x * 0x2545_F491_4F6C_DD1DUL;
    }
}
