using System.Buffers.Binary;

namespace XenBackends.XenStore;

/// <summary>
/// The 16-byte header in front of every xenstore message, on the socket and on /dev/xen/xenbus alike.
/// Little-endian because every Xen dom0 this project targets is x86/Arm little-endian.
/// </summary>
public readonly record struct XsdSockmsg(XsdSockmsgType Type, uint ReqId, uint TxId, uint Len)
{
    public const int HeaderSize = 16;

    /// <summary>XENSTORE_PAYLOAD_MAX: daemons kill connections that exceed it, so both sides enforce it.</summary>
    public const int XENSTORE_PAYLOAD_MAX = 4096;

    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)Type);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], ReqId);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], TxId);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], Len);
    }

    /// <summary>Decodes a header without judging it; callers decide which types and lengths they accept.</summary>
    public static (uint Type, uint ReqId, uint TxId, uint Len) ReadRaw(ReadOnlySpan<byte> source) => (
        BinaryPrimitives.ReadUInt32LittleEndian(source),
        BinaryPrimitives.ReadUInt32LittleEndian(source[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[12..]));

    /// <summary>Builds one complete frame (header + payload) so it can be written with a single call.</summary>
    public static byte[] Frame(XsdSockmsgType type, uint reqId, uint txId, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > XENSTORE_PAYLOAD_MAX)
            throw new ArgumentException($"xenstore payload of {payload.Length} bytes exceeds XENSTORE_PAYLOAD_MAX ({XENSTORE_PAYLOAD_MAX})");
        var frame = new byte[HeaderSize + payload.Length];
        new XsdSockmsg(type, reqId, txId, (uint)payload.Length).WriteTo(frame);
        payload.CopyTo(frame.AsSpan(HeaderSize));
        return frame;
    }
}
