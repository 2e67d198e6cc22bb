using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Tmds.Linux;

namespace XenBackends.Native.Xen;

/// <summary>Reads one pending port if the device has one right now, without blocking.</summary>
internal delegate bool PendingPortReader(out uint port);

/// <summary>
/// One dedicated thread blocked in poll() on the event channel fd (and a wake-up eventfd), moving
/// pending ports into a queue that async waiters read. A single sleeping thread per handle costs
/// nothing while idle and keeps waits off the thread pool; the ports it queues are masked, so the
/// queue can never hold more than one entry per bound port.
/// </summary>
internal sealed class PendingPortPump : IDisposable
{
    private readonly int _deviceFd;
    private readonly PendingPortReader _tryRead;
    private readonly WakeupEventFd _wakeup = new();
    private readonly Channel<uint> _ports =
        Channel.CreateUnbounded<uint>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly Thread _thread;
    private int _stopping;

    public PendingPortPump(int deviceFd, PendingPortReader tryRead, string threadName)
    {
        _deviceFd = deviceFd;
        _tryRead = tryRead;
        _thread = new Thread(Run) { IsBackground = true, Name = threadName };
        _thread.Start();
    }

    public bool TryDequeue(out uint port) => _ports.Reader.TryRead(out port);

    public async ValueTask<uint> ReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _ports.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException e) when (e.InnerException is not null)
        {
            // The pump failed or was disposed: surface its own exception, not the channel's wrapper.
            ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
            return;
        _wakeup.Signal();
        // Only after the thread is gone may the owner close the device fd it polls.
        if (Thread.CurrentThread != _thread)
            _thread.Join();
        _ports.Writer.TryComplete(new ObjectDisposedException(nameof(XenEventChannels)));
        _wakeup.Dispose();
    }

    private void Run()
    {
        try
        {
            Pump();
        }
        catch (Exception e)
        {
            _ports.Writer.TryComplete(e);
        }
    }

    private unsafe void Pump()
    {
        pollfd* fds = stackalloc pollfd[2];
        while (Volatile.Read(ref _stopping) == 0)
        {
            fds[0] = new pollfd { fd = _deviceFd, events = LibC.POLLIN };
            fds[1] = new pollfd { fd = _wakeup.Fd, events = LibC.POLLIN };
            int rc = LibC.poll(fds, 2, -1);
            if (rc < 0)
            {
                int errno = LibC.errno;
                if (errno == LibC.EINTR)
                    continue;
                throw XenErrno.CallFailed("poll", errno, "waiting on the event channel device");
            }
            if (fds[1].revents != 0)
                return;

            short revents = fds[0].revents;
            if ((revents & LibC.POLLNVAL) != 0)
                throw XenErrno.CallFailed("poll", LibC.EBADF, "waiting on the event channel device (fd closed)");
            bool gotAny = false;
            while (_tryRead(out uint port))
            {
                gotAny = true;
                _ports.Writer.TryWrite(port);
            }
            // An error or hang-up that yields no port would make poll() return at once forever.
            if (!gotAny && (revents & (LibC.POLLERR | LibC.POLLHUP)) != 0)
                throw XenErrno.CallFailed("poll", LibC.EIO,
                    $"the event channel device reported {((revents & LibC.POLLERR) != 0 ? "an error" : "hang-up")}");
        }
    }
}
