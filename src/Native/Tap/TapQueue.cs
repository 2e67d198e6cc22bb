using Tmds.Linux;
using XenBackends.Native.Linux;

namespace XenBackends.Native.Tap;

/// <summary>
/// One open /dev/net/tun descriptor attached to a tap (one per netif queue with IFF_MULTI_QUEUE).
/// Non-blocking: each call moves exactly one frame, preceded by its virtio_net_hdr when the device
/// was created with one. Not thread-safe; one data-path thread owns a queue.
/// </summary>
public sealed unsafe class TapQueue : ITapQueue, IDisposable
{
    internal TapQueue(SafeFd fd, int index)
    {
        Handle = fd;
        Index = index;
    }

    public SafeFd Handle { get; }

    public int Index { get; }

    public int PollFd => Handle.Fd;

    /// <summary>Whether the kernel delivers frames to this fd (TUNSETQUEUE; a new fd starts attached).</summary>
    public bool IsAttached { get; internal set; } = true;

    /// <summary>errno of the last failed call on this queue (diagnostics only).</summary>
    public int LastErrno { get; private set; }

    /// <summary>Reads one frame (header included) into <paramref name="buffer"/>; a frame larger than the buffer is truncated by the kernel.</summary>
    public TapIoStatus Read(Span<byte> buffer, out int length)
    {
        length = 0;
        while (true)
        {
            long n;
            fixed (byte* p = buffer)
                n = LibC.read(Handle.Fd, p, buffer.Length);
            if (n >= 0)
            {
                length = (int)n;
                return TapIoStatus.Ok;
            }
            int errno = LibC.errno;
            if (errno == LibC.EINTR)
                continue;
            return Classify(errno);
        }
    }

    /// <summary>Writes one frame (header included). tun takes whole frames or nothing, so there is no short write to resume.</summary>
    public TapIoStatus Write(ReadOnlySpan<byte> frame)
    {
        while (true)
        {
            long n;
            fixed (byte* p = frame)
                n = LibC.write(Handle.Fd, p, frame.Length);
            if (n >= 0)
                return TapIoStatus.Ok;
            int errno = LibC.errno;
            if (errno == LibC.EINTR)
                continue;
            return Classify(errno);
        }
    }

    private TapIoStatus Classify(int errno)
    {
        LastErrno = errno;
        if (errno == LibC.EAGAIN)
            return TapIoStatus.WouldBlock;
        if (errno == LibC.EIO)
            return TapIoStatus.LinkDown;
        if (errno == LibC.EBADFD)
            return TapIoStatus.Gone;
        if (errno == LibC.EINVAL || errno == LibC.EMSGSIZE || errno == LibC.EFAULT)
            return TapIoStatus.Rejected;
        return TapIoStatus.Failed;
    }

    public void Dispose() => Handle.Dispose();
}
