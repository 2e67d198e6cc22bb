using XenBackends.Native.Linux;
using XenBackends.Native.Tap;

namespace XenBackends.Backend.Net;

/// <summary>
/// Follows which bridge (master interface) the vif's tap is a port of, from rtnetlink link
/// notifications in the tap's own namespace: deleting the bridge, or taking the port out of it,
/// leaves the tap working but connected to nothing, which no read or write on the tap reveals. One
/// thread sleeps in epoll on the netlink socket and a stop eventfd; it costs nothing between link
/// changes. <paramref name="onMaster"/> gets the master's ifindex (0: none) at start and on every change.
/// </summary>
internal sealed class TapBridgeWatch : IDisposable
{
    private const ulong TokenLink = 0;
    private const ulong TokenStop = 1;

    private readonly LinkNotifications _link;
    private readonly string _name;
    private readonly Action<int> _onMaster;
    private readonly Action<string> _log;
    private readonly EventFd _stop = EventFd.Create();
    private readonly QueuePoll _poll = new();
    private readonly Thread _thread;
    private readonly byte[] _buffer = new byte[32 * 1024];
    private int _index;
    private int _master = -1;

    private TapBridgeWatch(LinkNotifications link, string name, Action<int> onMaster, Action<string> log)
    {
        _link = link;
        _name = name;
        _onMaster = onMaster;
        _log = log;
        _poll.Add(link.PollFd, TokenLink);
        _poll.Add(_stop.Handle.Fd, TokenStop);
        _thread = new Thread(Run) { IsBackground = true, Name = "vif bridge watch" };
    }

    /// <summary>Starts watching <paramref name="name"/> in the namespace <paramref name="queue"/>'s interface is in.</summary>
    public static TapBridgeWatch Start(TapQueue queue, string name, Action<int> onMaster, Action<string> log)
    {
        var link = LinkNotifications.OpenForTap(queue);
        try
        {
            var watch = new TapBridgeWatch(link, name, onMaster, log);
            // Subscribed first, then asked: a change in between arrives after the answer, never lost.
            link.RequestLink(name);
            watch._thread.Start();
            return watch;
        }
        catch
        {
            link.Dispose();
            throw;
        }
    }

    private void Run()
    {
        try
        {
            while (true)
            {
                ulong ready = _poll.Wait(-1);
                if ((ready & (1UL << (int)TokenStop)) != 0)
                    return;
                while (true)
                {
                    int n = _link.Receive(_buffer);
                    if (n == 0)
                        break;
                    if (n < 0)
                    {
                        // Notifications were dropped: the current state is all that matters.
                        _link.RequestLink(_name);
                        continue;
                    }
                    foreach (var message in LinkMessage.Parse(_buffer.AsSpan(0, n)))
                    {
                        if (message.Name != _name && (_index == 0 || message.Index != _index))
                            continue;
                        if (message.Deleted)
                        {
                            // Deleted, or moved to another namespace: nothing more to see from here.
                            _log($"tap {_name} left this network namespace's view; no longer watching its bridge");
                            return;
                        }
                        _index = message.Index;
                        if (message.Master != _master)
                        {
                            // Deleting a bridged tap first takes it out of the bridge: give its
                            // RTM_DELLINK a moment to arrive, so a deleted tap is not also reported as unbridged.
                            if (message.Master == 0 && _master > 0 && DeletedWithin(TimeSpan.FromMilliseconds(200)))
                            {
                                _log($"tap {_name} was deleted; no longer watching its bridge");
                                return;
                            }
                            _master = message.Master;
                            _onMaster(_master);
                        }
                    }
                }
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _log($"watching the bridge of tap {_name} failed: {e.Message}");
        }
    }

    // Waits up to the bound for an RTM_DELLINK of our interface; other messages seen meanwhile are dropped
    // (the kernel is asked for the current state again afterwards).
    private bool DeletedWithin(TimeSpan bound)
    {
        long deadline = Environment.TickCount64 + (long)bound.TotalMilliseconds;
        bool sawOther = false;
        while (true)
        {
            int left = (int)(deadline - Environment.TickCount64);
            if (left <= 0)
                break;
            ulong ready = _poll.Wait(left);
            if ((ready & (1UL << (int)TokenStop)) != 0)
                return true;
            int n;
            while ((n = _link.Receive(_buffer)) != 0)
            {
                if (n < 0)
                    continue;
                foreach (var message in LinkMessage.Parse(_buffer.AsSpan(0, n)))
                {
                    if (message.Index != _index && message.Name != _name)
                        continue;
                    if (message.Deleted)
                        return true;
                    sawOther = true;
                }
            }
        }
        if (sawOther)
            _link.RequestLink(_name);
        return false;
    }

    public void Dispose()
    {
        _stop.Signal();
        if (_thread.IsAlive)
            _thread.Join();
        _poll.Dispose();
        _stop.Dispose();
        _link.Dispose();
    }
}
