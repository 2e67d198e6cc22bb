namespace XenBackends.Native.Tap;

/// <summary>
/// One queue's frame device as the data path uses it: whole frames (virtio_net_hdr first) in and
/// out, non-blocking, plus a descriptor to sleep on. <see cref="TapQueue"/> is the real one; the
/// benchmark puts a null sink/source here to measure the backend without the kernel's tap cost.
/// </summary>
public interface ITapQueue
{
    /// <summary>Polls readable when a frame may be ready to <see cref="Read"/>.</summary>
    int PollFd { get; }

    TapIoStatus Read(Span<byte> buffer, out int length);

    TapIoStatus Write(ReadOnlySpan<byte> frame);
}
