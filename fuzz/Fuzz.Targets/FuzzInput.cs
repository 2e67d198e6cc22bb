using System.Buffers.Binary;

namespace XenBackends.Fuzz;

/// <summary>
/// Reads an afl input as a stream of choices. Past the end every read is zero, so any byte string
/// (including the empty one) is a complete, valid input: afl's truncations and extensions only
/// change the choices, never make the harness itself fail.
/// </summary>
internal ref struct FuzzInput(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _at;

    public readonly int Remaining => Math.Max(0, _data.Length - _at);

    public byte Byte() => _at < _data.Length ? _data[_at++] : (byte)0;

    public ushort UInt16() => (ushort)(Byte() | Byte() << 8);

    public uint UInt32() => (uint)(UInt16() | UInt16() << 16);

    public ulong UInt64() => UInt32() | (ulong)UInt32() << 32;

    public bool Bool() => (Byte() & 1) != 0;

    /// <summary>Fills <paramref name="destination"/> from the input, zeros past its end.</summary>
    public void Bytes(scoped Span<byte> destination)
    {
        int n = Math.Min(destination.Length, Remaining);
        _data.Slice(_at, n).CopyTo(destination);
        destination[n..].Clear();
        _at += n;
    }

    /// <summary>The rest of the input.</summary>
    public ReadOnlySpan<byte> Rest()
    {
        ReadOnlySpan<byte> rest = _at < _data.Length ? _data[_at..] : [];
        _at = _data.Length;
        return rest;
    }
}

/// <summary>Writes inputs in the order <see cref="FuzzInput"/> reads them (seed corpora, regression inputs).</summary>
internal sealed class FuzzInputWriter
{
    private readonly List<byte> _bytes = [];

    public FuzzInputWriter Byte(int value) { _bytes.Add((byte)value); return this; }

    public FuzzInputWriter UInt16(int value) => Byte(value).Byte(value >> 8);

    public FuzzInputWriter UInt32(uint value) => UInt16((int)(value & 0xFFFF)).UInt16((int)(value >> 16));

    public FuzzInputWriter UInt64(ulong value) => UInt32((uint)value).UInt32((uint)(value >> 32));

    public FuzzInputWriter Bytes(ReadOnlySpan<byte> value) { foreach (byte b in value) _bytes.Add(b); return this; }

    public byte[] ToArray() => [.. _bytes];

    public static void Put(Span<byte> slot, int offset, ulong value, int size)
    {
        switch (size)
        {
            case 1: slot[offset] = (byte)value; break;
            case 2: BinaryPrimitives.WriteUInt16LittleEndian(slot[offset..], (ushort)value); break;
            case 4: BinaryPrimitives.WriteUInt32LittleEndian(slot[offset..], (uint)value); break;
            default: BinaryPrimitives.WriteUInt64LittleEndian(slot[offset..], value); break;
        }
    }
}
