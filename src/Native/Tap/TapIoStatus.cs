namespace XenBackends.Native.Tap;

/// <summary>Outcome of one non-blocking frame read or write on a tap queue; errors are values, not exceptions, on the data path.</summary>
public enum TapIoStatus
{
    Ok = 0,
    /// <summary>EAGAIN: no frame queued (read) or the queue is full (write).</summary>
    WouldBlock = 1,
    /// <summary>EIO: the interface is down (a write to a tap that is not up).</summary>
    LinkDown = 2,
    /// <summary>EINVAL: the kernel refused the frame (bad virtio_net_hdr, frame too short or too long).</summary>
    Rejected = 3,
    /// <summary>Anything else; <see cref="TapQueue.LastErrno"/> says what.</summary>
    Failed = 4,
    /// <summary>
    /// EBADFD: the interface was deleted under this fd (`ip link del`); the fd is detached for good
    /// until it is attached again (<see cref="TapDevice.Recreate"/>). Its poll reports EPOLLERR until then.
    /// </summary>
    Gone = 5,
}
