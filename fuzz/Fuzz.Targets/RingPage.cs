using System.Buffers.Binary;

namespace XenBackends.Fuzz;

/// <summary>32-bit little-endian fields of a guest page as the guest writes and reads them: ring indexes (req_prod, rsp_event, ...), grant refs.</summary>
internal static class RingPage
{
    public static void Put(Span<byte> page, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(page[offset..], value);

    public static uint Get(Span<byte> page, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(page[offset..]);
}
