using XenBackends.Native;
using XenBackends.Native.Linux;
using XenBackends.Native.Tap;
using XenBackends.Rings;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Control;

/// <summary>
/// The control ring (netif.h "Control ring", netback's connect_ctrl_ring): one mapped page, one event
/// channel and one thread that answers each request through a <see cref="CtrlRequestProcessor"/>.
/// Requests are copied out of the ring before use (RING_COPY_REQUEST); only an impossible ring index
/// is fatal, a bad request is just a status.
/// </summary>
internal sealed class CtrlRing : IDisposable
{
    private const int TokenEvtchn = 0;
    private const int TokenStop = 1;

    private readonly SharedMemory _memory;
    private readonly IEventChannels _evtchn;
    private readonly uint _port;
    private readonly BackRing _ring;
    private readonly Action<string> _onFatal;
    private readonly QueuePoll _poll = new();
    private readonly EventFd _stop = EventFd.Create();
    private readonly Thread _thread;

    public CtrlRing(ushort domid, SharedMemory memory, IEventChannels evtchn, uint port, CtrlRequestProcessor processor, Action<string> onFatal)
    {
        _memory = memory;
        _evtchn = evtchn;
        _port = port;
        Processor = processor;
        _onFatal = onFatal;
        _ring = BackRing.AttachAtSharedIndexes(memory, NetifRings.Ctrl);
        if (_ring.PollRequests(out _) == RingPoll.Faulted)
        {
            // Opened by the field initializers; closed now rather than by a finalizer, since a guest
            // can retry a bogus ring at will (found by fuzz/ net-ctrl).
            _stop.Dispose();
            _poll.Dispose();
            throw new InvalidDataException("the control ring's req_prod is more than a ring size ahead of rsp_prod");
        }
        _poll.Add(evtchn.PollFd, TokenEvtchn);
        _poll.Add(_stop.Handle.Fd, TokenStop);
        _thread = new Thread(Run) { IsBackground = true, Name = $"netback d{domid} ctrl" };
    }

    public CtrlRequestProcessor Processor { get; }

    public void Start() => _thread.Start();

    /// <summary>
    /// Serves the ring once on the caller's thread, for a ring that was never started: the
    /// coverage-guided fuzz harness (fuzz/) drives the real message handling synchronously. False
    /// when the ring went fatal.
    /// </summary>
    internal bool ServeOnCallerThread()
    {
        if ((_thread.ThreadState & System.Threading.ThreadState.Unstarted) == 0)
            throw new InvalidOperationException("the control thread owns this ring");
        return Serve();
    }

    private void Run()
    {
        try
        {
            int timeout = 0; // requests may predate our binding
            while (true)
            {
                if ((_poll.Wait(timeout) & (1UL << TokenStop)) != 0)
                    return;
                bool kicked = false;
                while (_evtchn.TryGetPending(out _))
                    kicked = true;
                bool ok = Serve();
                if (kicked)
                    _evtchn.Unmask(_port);
                if (!ok)
                    return;
                timeout = _ring.FinalCheckForRequests() == RingPoll.Idle ? -1 : 0;
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _onFatal("control ring: internal error: " + e.Message);
        }
    }

    private bool Serve()
    {
        while (true)
        {
            RingRead read = _ring.TryConsumeRequest(out XenNetifCtrlRequest request);
            if (read == RingRead.Faulted)
            {
                _onFatal("control ring: impossible number of requests (req_prod - rsp_prod > ring size)");
                return false;
            }
            if (read == RingRead.Empty)
                return true;
            _ring.PutResponse(Processor.Process(request));
            // One response per request, pushed at once: a frontend may wait on each before sending the next.
            if (_ring.PushResponsesAndCheckNotify())
                _evtchn.Notify(_port);
        }
    }

    public void Dispose()
    {
        _stop.Signal();
        if (_thread.IsAlive)
            _thread.Join();
        try
        {
            _evtchn.Unbind(_port);
        }
        catch (XenNativeException)
        {
            // The domain is gone; its ports went with it.
        }
        _evtchn.Dispose();
        _memory.Dispose();
        _poll.Dispose();
        _stop.Dispose();
    }
}
