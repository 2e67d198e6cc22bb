using System.Text;

namespace XenBackends.XenStore;

/// <summary>
/// Payloads are NUL-separated strings ("path|value", "wpath|token|"); these helpers build and split them
/// so no caller hand-counts terminators.
/// </summary>
public static class XsPayload
{
    /// <summary>Each string followed by a NUL, as libxenstore sends them.</summary>
    public static byte[] Strings(params string[] parts)
    {
        var length = 0;
        foreach (var part in parts) length += Encoding.UTF8.GetByteCount(part) + 1;
        var buffer = new byte[length];
        var offset = 0;
        foreach (var part in parts)
        {
            offset += Encoding.UTF8.GetBytes(part, buffer.AsSpan(offset));
            buffer[offset++] = 0;
        }
        return buffer;
    }

    /// <summary>"path\0" followed by raw bytes with no terminator (XS_WRITE).</summary>
    public static byte[] PathAndValue(string path, ReadOnlySpan<byte> value)
    {
        var pathBytes = Encoding.UTF8.GetByteCount(path);
        var buffer = new byte[pathBytes + 1 + value.Length];
        Encoding.UTF8.GetBytes(path, buffer);
        value.CopyTo(buffer.AsSpan(pathBytes + 1));
        return buffer;
    }

    /// <summary>Splits on NUL; a trailing NUL does not produce an empty last element.</summary>
    public static List<string> Split(ReadOnlySpan<byte> payload)
    {
        var result = new List<string>();
        while (!payload.IsEmpty)
        {
            var nul = payload.IndexOf((byte)0);
            if (nul < 0)
            {
                result.Add(Encoding.UTF8.GetString(payload));
                break;
            }
            result.Add(Encoding.UTF8.GetString(payload[..nul]));
            payload = payload[(nul + 1)..];
        }
        return result;
    }

    /// <summary>A single string reply ("OK\0", "/local/domain/1\0"), tolerating a missing terminator.</summary>
    public static string SingleString(ReadOnlySpan<byte> payload)
    {
        var nul = payload.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? payload : payload[..nul]);
    }
}
