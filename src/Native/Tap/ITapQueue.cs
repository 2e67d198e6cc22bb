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

    /// <summary>
    /// Reads one frame. As tun does, a frame longer than <paramref name="buffer"/> is truncated: what
    /// fits is copied, the frame is consumed and <paramref name="length"/> is its full length (the
    /// data path drops frames by reading them into a small buffer).
    /// </summary>
    TapIoStatus Read(Span<byte> buffer, out int length);

    TapIoStatus Write(ReadOnlySpan<byte> frame);
}
