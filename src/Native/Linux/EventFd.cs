using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>
/// A non-blocking <c>eventfd</c> used as a doorbell: signals add up in a counter until consumed, so any
/// number of signals before a consume are seen as one wake-up (event-channel semantics).
/// </summary>
public sealed class EventFd : IDisposable
{
    private EventFd(SafeFd handle) => Handle = handle;

    public SafeFd Handle { get; }

    public static EventFd Create()
    {
        int fd = LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK);
        if (fd < 0)
            throw LinuxCallException.FromErrno("eventfd");
        return new EventFd(new SafeFd(fd));
    }

    /// <summary>Wraps an eventfd received from elsewhere (taking ownership) and makes it non-blocking.</summary>
    public static EventFd Adopt(SafeFd handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        int fd = handle.Fd;
        // Anything else (a pipe, a file) would accept our 8-byte writes and misbehave much later, so check now.
        string? target = null;
        try
        {
            target = new FileInfo($"/proc/self/fd/{fd}").LinkTarget;
        }
        catch (IOException)
        {
        }
        if (target != "anon_inode:[eventfd]")
            throw new ArgumentException($"fd {fd} is not an eventfd ({target ?? "unknown"})", nameof(handle));
        int flags = LibC.fcntl(fd, LibC.F_GETFL);
        if (flags < 0 || LibC.fcntl(fd, LibC.F_SETFL, flags | LibC.O_NONBLOCK) != 0)
            throw LinuxCallException.FromErrno("fcntl(O_NONBLOCK)");
        return new EventFd(handle);
    }

    public unsafe void Signal(ulong count = 1)
    {
        ArgumentOutOfRangeException.ThrowIfZero(count);
        ulong value = count;
        long n = LibC.write(Handle.Fd, &value, sizeof(ulong));
        // EAGAIN means the counter is saturated: the peer has an unconsumed signal already, which is all a doorbell needs.
        if (n < 0 && LibC.errno != LibC.EAGAIN)
            throw LinuxCallException.FromErrno("write(eventfd)");
    }

    /// <summary>Takes every signal so far without blocking; false when there were none.</summary>
    public unsafe bool TryConsume(out ulong count)
    {
        ulong value = 0;
        long n = LibC.read(Handle.Fd, &value, sizeof(ulong));
        if (n < 0)
        {
            int errno = LibC.errno;
            if (errno == LibC.EAGAIN)
            {
                count = 0;
                return false;
            }
            throw new LinuxCallException("read(eventfd)", errno);
        }
        if (n != sizeof(ulong))
            throw new InvalidOperationException($"read {n} bytes from an eventfd; the fd is not an eventfd");
        count = value;
        return true;
    }

    /// <summary>Waits (without spinning) for at least one signal and consumes all of them.</summary>
    public async ValueTask<ulong> WaitAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (TryConsume(out ulong count))
                return count;
            await FdPoller.Shared.WaitReadableAsync(Handle, cancellationToken).ConfigureAwait(false);
        }
    }

    public void Dispose() => Handle.Dispose();
}
