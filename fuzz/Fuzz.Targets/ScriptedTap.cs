using XenBackends.Native.Linux;
using XenBackends.Native.Tap;

namespace XenBackends.Fuzz;

/// <summary>
/// The net-rx target's frame device: hands out the records (virtio_net_hdr + frame) the input chose,
/// one per read, as tun does (a record longer than the buffer is truncated, consumed and reported at
/// its full length), with read failures where the input chose them; then nothing.
/// </summary>
internal sealed class ScriptedTap(IReadOnlyList<byte[]> records, byte failMask) : ITapQueue, IDisposable
{
    private readonly EventFd _never = EventFd.Create();
    private int _next, _reads;

    public int PollFd => _never.Handle.Fd;

    /// <summary>How many records were consumed.</summary>
    public int Consumed => _next;

    public TapIoStatus Read(Span<byte> buffer, out int length)
    {
        length = 0;
        if (_next == records.Count)
            return TapIoStatus.WouldBlock;
        // Bit k set: the k-th read (mod 8) fails without consuming anything (ENOBUFS, EIO...).
        int k = _reads++;
        if ((failMask >> (k % 8) & 1) != 0)
            return TapIoStatus.Failed;
        byte[] record = records[_next++];
        int n = Math.Min(record.Length, buffer.Length);
        record.AsSpan(0, n).CopyTo(buffer);
        length = record.Length;
        return TapIoStatus.Ok;
    }

    public TapIoStatus Write(ReadOnlySpan<byte> frame) => TapIoStatus.Ok;

    public void Dispose() => _never.Dispose();
}
