namespace XenBackends.Backend.Net.Tests.Infra;

/// <summary>
/// The Toeplitz hash written straight from its definition, bit by bit and slowly: for each input bit
/// i (most significant first) that is set, XOR in key bits i..i+31. The production table-driven code
/// is checked against this, and this against the published RSS vectors.
/// </summary>
internal static class ToeplitzReference
{
    public static uint Hash(ReadOnlySpan<byte> key, ReadOnlySpan<byte> input)
    {
        uint result = 0;
        for (int i = 0; i < input.Length * 8; i++)
        {
            if ((input[i / 8] & (0x80 >> (i % 8))) == 0)
                continue;
            uint window = 0;
            for (int j = 0; j < 32; j++)
                window = (window << 1) | (uint)KeyBit(key, i + j);
            result ^= window;
        }
        return result;
    }

    private static int KeyBit(ReadOnlySpan<byte> key, int bit) =>
        bit / 8 < key.Length ? (key[bit / 8] >> (7 - bit % 8)) & 1 : 0;
}
