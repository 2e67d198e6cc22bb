namespace XenBackends.Native.Tap;

/// <summary>Outcome of one non-blocking frame read or write on a tap queue; errors are values, not exceptions, on the data path.</summary>
public enum TapIoStatus
{
    Ok = 0,
    /// <summary>EAGAIN: no frame queued (read) or the queue is full (write).</summary>
    WouldBlock = 1,
    /// <summary>EIO: the interface is down or detached (a write to a down tap, a queue disabled).</summary>
    LinkDown = 2,
    /// <summary>EINVAL: the kernel refused the frame (bad virtio_net_hdr, frame too short or too long).</summary>
    Rejected = 3,
    /// <summary>Anything else; <see cref="TapQueue.LastErrno"/> says what.</summary>
    Failed = 4,
}
