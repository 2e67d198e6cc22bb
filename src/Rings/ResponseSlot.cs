using System.Buffers.Binary;

namespace XenBackends.Rings;

/// <summary>
/// A write-only view of one message slot being produced. Its bytes are already zeroed when handed
/// out, so fields not written (padding included) cannot leak private memory (XSA-216), and nothing
/// can be read back from it, so the peer's earlier contents of the slot cannot be fetched (XSA-155).
/// Offsets are the C struct's; Xen rings are little-endian on every supported ABI.
/// </summary>
public readonly ref struct ResponseSlot
{
    private readonly Span<byte> _bytes;

    internal ResponseSlot(Span<byte> zeroedBytes) => _bytes = zeroedBytes;

    /// <summary>The message size (response size for a back ring, request size for a front ring).</summary>
    public int Length => _bytes.Length;

    public void WriteByte(int offset, byte value) => _bytes[offset] = value;

    public void WriteUInt16(int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(_bytes[offset..], value);

    public void WriteInt16(int offset, short value) => BinaryPrimitives.WriteInt16LittleEndian(_bytes[offset..], value);

    public void WriteUInt32(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_bytes[offset..], value);

    public void WriteUInt64(int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(_bytes[offset..], value);

    public void WriteBytes(int offset, ReadOnlySpan<byte> value) => value.CopyTo(_bytes[offset..]);
}

/// <summary>A message that knows how to write itself field by field into a zeroed slot.</summary>
public interface IRingMessage
{
    void WriteTo(ResponseSlot slot);
}
