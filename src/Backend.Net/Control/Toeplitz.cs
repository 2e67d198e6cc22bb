namespace XenBackends.Backend.Net.Control;

/// <summary>
/// The Toeplitz hash (XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, the Microsoft RSS definition): for every
/// input bit that is set, XOR in the 32-bit window of the key that starts at that bit position.
/// A key is turned into per-byte lookup tables once, when the frontend sets it, so hashing a packet
/// costs one lookup per input byte instead of eight shifts and XORs.
/// </summary>
public sealed class Toeplitz
{
    /// <summary>Longest input we hash: IPv6 source + destination + two ports.</summary>
    public const int MaxInput = 36;

    /// <summary>The largest key we accept (XEN_NETBK_MAX_HASH_KEY_SIZE; RSS keys are 40 bytes).</summary>
    public const int MaxKeyLength = 40;

    // _table[i * 256 + b]: the hash contribution of byte value b at input position i.
    private readonly uint[] _table = new uint[MaxInput * 256];

    /// <summary>Builds the tables for <paramref name="key"/> (shorter keys are zero-extended, as netif.h says).</summary>
    public Toeplitz(ReadOnlySpan<byte> key)
    {
        if (key.Length > MaxKeyLength)
            throw new ArgumentException($"a key is at most {MaxKeyLength} bytes", nameof(key));
        Span<byte> k = stackalloc byte[MaxKeyLength + 4];
        k.Clear();
        key.CopyTo(k);
        Span<uint> windows = stackalloc uint[8];
        for (int i = 0; i < MaxInput; i++)
        {
            // The 32-bit key windows starting at the eight bit positions of input byte i.
            ulong span = ((ulong)k[i] << 32) | ((ulong)k[i + 1] << 24) | ((ulong)k[i + 2] << 16) | ((ulong)k[i + 3] << 8) | k[i + 4];
            for (int bit = 0; bit < 8; bit++)
                windows[bit] = (uint)(span >> (8 - bit));
            for (int b = 0; b < 256; b++)
            {
                uint h = 0;
                for (int bit = 0; bit < 8; bit++)
                {
                    if ((b & (0x80 >> bit)) != 0)
                        h ^= windows[bit];
                }
                _table[i * 256 + b] = h;
            }
        }
    }

    public uint Hash(ReadOnlySpan<byte> input)
    {
        if (input.Length > MaxInput)
            throw new ArgumentException($"input is at most {MaxInput} bytes", nameof(input));
        uint h = 0;
        for (int i = 0; i < input.Length; i++)
            h ^= _table[i * 256 + input[i]];
        return h;
    }
}
