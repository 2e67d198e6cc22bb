using XenBackends.Native.Linux;
using XenBackends.Native.Tap;

namespace XenBackends.Fuzz;

/// <summary>
/// The net target's frame device: keeps every record (virtio_net_hdr + frame) the queue writes and
/// answers with statuses the input chose (a full queue, a link down, a kernel refusal).
/// </summary>
internal sealed class RecordingTap : ITapQueue, IDisposable
{
    private readonly EventFd _never = EventFd.Create();

    public List<byte[]> Records { get; } = [];

    /// <summary>Bit k set: the k-th write (mod 8) fails.</summary>
    public byte FailMask { get; set; }

    public int PollFd => _never.Handle.Fd;

    public TapIoStatus Read(Span<byte> buffer, out int length)
    {
        length = 0;
        return TapIoStatus.WouldBlock;
    }

    public TapIoStatus Write(ReadOnlySpan<byte> frame)
    {
        int k = Records.Count;
        Records.Add(frame.ToArray());
        return (FailMask >> (k % 8) & 1) == 0 ? TapIoStatus.Ok : (TapIoStatus)(1 + k % 4);
    }

    public void Dispose() => _never.Dispose();
}
