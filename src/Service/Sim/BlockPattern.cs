using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace XenBackends.Service.Sim;

/// <summary>
/// The content the demo writes into a 4 KiB block: derived from the block's number and the generation
/// of the write, so any read can be checked without a shadow copy of the disk. Generation 0 is the
/// sparse image's zeros.
/// </summary>
internal static class BlockPattern
{
    public const int BlockSize = 4096;

    public static void Fill(Span<byte> block, long number, int generation)
    {
        if (generation == 0)
        {
            block.Clear();
            return;
        }
        var words = MemoryMarshal.Cast<byte, ulong>(block);
        ulong x = Seed(number, generation);
        for (int i = 0; i < words.Length; i++)
        {
            // xorshift64: cheap enough to regenerate on every verify, different for every (block, generation).
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            words[i] = x;
        }
        BinaryPrimitives.WriteInt64LittleEndian(block, number);
        BinaryPrimitives.WriteInt32LittleEndian(block[8..], generation);
    }

    public static bool Matches(ReadOnlySpan<byte> block, long number, int generation, Span<byte> scratch)
    {
        Fill(scratch, number, generation);
        return block.SequenceEqual(scratch);
    }

    private static ulong Seed(long number, int generation) =>
        ((ulong)number * 0x9E3779B97F4A7C15UL) ^ ((ulong)(uint)generation << 32) ^ 0xD1B54A32D192ED03UL | 1;
}
