using System.Globalization;
using System.Threading.Channels;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Guest;

/// <summary>
/// Linux xen-netfront in a simulated guest: on backend InitWait it runs <c>xennet_connect</c> /
/// <c>talk_to_netback</c> (same keys, one transaction), posts its receive buffers and goes straight to
/// Connected, as Linux does. Frames are sent through read-only granted pages and received into pages
/// granted writable, one per rx slot.
/// </summary>
public sealed class SimulatedNetfront : XenbusFrontend
{
    private readonly NetfrontOptions _options;
    private SimulatedEventChannels _events;
    private readonly Channel<ReceivedFrame> _received = Channel.CreateUnbounded<ReceivedFrame>();
    private NetfrontQueue[] _queues = [];
    // Frozen by a suspend, freed on resume; their counters move to _retired then.
    private NetfrontQueue[] _frozen = [];
    private NetfrontCounters _retired;
    private int _generation;
    // netif_device_detach between a suspend and xennet_connect: senders wait here, as frames wait
    // in the qdisc of a detached Linux netdev, instead of failing.
    private volatile TaskCompletionSource _attached = Attached();
    private Task _eventLoop = Task.CompletedTask;
    private CancellationTokenSource? _eventStop;
    private int _nextQueue;

    private SimulatedNetfront(SimulatedGuest guest, int devid, NetfrontOptions options)
        : base(guest, "vif", devid)
    {
        _options = options;
        _events = guest.Host.OpenEventChannels(guest.Domid);
        Hostile = new FrontendHostile(this, () => [.. _queues.SelectMany(q => new[] { q.Tx, q.Rx })]);
    }

    public static async Task<SimulatedNetfront> AttachAsync(SimulatedGuest guest, int devid, NetfrontOptions? options = null, CancellationToken cancellationToken = default)
    {
        var front = new SimulatedNetfront(guest, devid, options ?? new NetfrontOptions());
        try
        {
            await front.StartAsync(cancellationToken).ConfigureAwait(false);
            return front;
        }
        catch
        {
            await front.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The frontend's <c>mac</c>, as xen_net_read_mac read it.</summary>
    public string Mac { get; private set; } = "";

    public int NumQueues => _queues.Length;

    public bool SplitEventChannels { get; private set; }

    /// <summary>What the backend said it can take from us (xennet_fix_features).</summary>
    public bool BackendSg { get; private set; }

    public bool BackendGsoTcpV4 { get; private set; }

    public bool BackendGsoTcpV6 { get; private set; }

    public bool BackendIpv6CsumOffload { get; private set; }

    public FrontendHostile Hostile { get; }

    public bool IsConnected => State == XenbusState.Connected && _queues.Length > 0;

    public Task WaitConnectedAsync(TimeSpan timeout) => WaitUntilAsync(() => IsConnected, timeout, "connect");

    /// <summary>Totals since attach, across every connection (resumes and reconnects re-create the queues).</summary>
    public NetfrontCounters Counters
    {
        get
        {
            lock (_countersLock)
                return _retired + Sum(_queues) + Sum(_frozen);
        }
    }

    /// <summary>The current connection: 1 after the first connect, one more for every later one (resume, reconnect).</summary>
    public int Generation => Volatile.Read(ref _generation);

    /// <summary>How many times the driver resumed in a new domain (netfront_resume).</summary>
    public int Resumes { get; private set; }

    private readonly Lock _countersLock = new();

    private static NetfrontCounters Sum(NetfrontQueue[] qs) =>
        new(qs.Sum(q => Interlocked.Read(ref q.TxPackets)), qs.Sum(q => Interlocked.Read(ref q.TxBytes)), qs.Sum(q => Interlocked.Read(ref q.TxErrors)),
            qs.Sum(q => q.RxPackets), qs.Sum(q => q.RxBytes), qs.Sum(q => q.RxErrors))
        { TxDropped = qs.Sum(q => Interlocked.Read(ref q.TxDropped)) };

    /// <summary>Drops queues that will never be used again, keeping what they counted.</summary>
    private void Retire(NetfrontQueue[] queues)
    {
        lock (_countersLock)
        {
            _retired += Sum(queues);
            if (queues == _queues) _queues = [];
            if (queues == _frozen) _frozen = [];
        }
    }

    private protected override async Task OtherEndChangedAsync(XenbusState backendState)
    {
        switch (backendState)
        {
            case XenbusState.InitWait:
                if (State != XenbusState.Initialising)
                    break;
                await ConnectAsync(Stopping).ConfigureAwait(false);
                await SwitchStateAsync(XenbusState.Connected, Stopping).ConfigureAwait(false);
                break;
            case XenbusState.Closed:
                if (State == XenbusState.Closed)
                    break;
                await SwitchStateAsync(XenbusState.Closed, Stopping).ConfigureAwait(false);
                break;
            case XenbusState.Closing:
                await SwitchStateAsync(XenbusState.Closed, Stopping).ConfigureAwait(false);
                break;
        }
    }

    /// <summary>xennet_connect: refuses a backend without feature-rx-copy, then talk_to_netback, then fills the rx rings.</summary>
    private async Task ConnectAsync(CancellationToken ct)
    {
        if (await ReadBackendUIntAsync("feature-rx-copy", 0, ct).ConfigureAwait(false) == 0)
            throw new InvalidDataException($"{OtherEnd} does not offer feature-rx-copy; netfront cannot use it");
        await TalkToNetbackAsync(ct).ConfigureAwait(false);
        BackendSg = await ReadBackendUIntAsync("feature-sg", 0, ct).ConfigureAwait(false) != 0;
        BackendGsoTcpV4 = await ReadBackendUIntAsync("feature-gso-tcpv4", 0, ct).ConfigureAwait(false) != 0;
        BackendGsoTcpV6 = await ReadBackendUIntAsync("feature-gso-tcpv6", 0, ct).ConfigureAwait(false) != 0;
        BackendIpv6CsumOffload = await ReadBackendUIntAsync("feature-ipv6-csum-offload", 0, ct).ConfigureAwait(false) != 0;
        foreach (var q in _queues)
        {
            q.KickAll();
            q.CollectTx();
            q.FillRx();
        }
        // xennet_connect: netif_device_attach, carrier on; frames held while detached go out now.
        _attached.TrySetResult();
    }

    private async Task TalkToNetbackAsync(CancellationToken ct)
    {
        uint maxQueues = await ReadBackendUIntAsync("multi-queue-max-queues", 1, ct).ConfigureAwait(false);
        uint numQueues = Math.Max(1, Math.Min(maxQueues, _options.MaxQueues));
        SplitEventChannels = await ReadBackendUIntAsync("feature-split-event-channels", 0, ct).ConfigureAwait(false) != 0;
        if (await ReadBackendUIntAsync("feature-xdp-headroom", 0, ct).ConfigureAwait(false) != 0)
            await Xs.WriteAsync(NodeName + "/xdp-headroom", "0", ct).ConfigureAwait(false);
        Mac = await Xs.ReadStringAsync(NodeName + "/mac", ct).ConfigureAwait(false);

        FreeQueues();
        int generation = Interlocked.Increment(ref _generation);
        var queues = new NetfrontQueue[numQueues];
        for (int i = 0; i < numQueues; i++)
            queues[i] = NetfrontQueue.Setup(Guest.Domain, _events, OtherEndId, i, SplitEventChannels, _options.RxBuffers, _received.Writer, generation);
        _queues = queues;
        StartEventLoop();

        bool backendHasMq = await Xs.TryReadStringAsync(OtherEnd + "/multi-queue-max-queues", ct).ConfigureAwait(false) is not null;
        await Xs.RunTransactionAsync(async t =>
        {
            if (backendHasMq)
                await t.WriteAsync(NodeName + "/multi-queue-num-queues", Num(numQueues), ct).ConfigureAwait(false);
            if (numQueues == 1)
                await WriteQueueKeysAsync(t, _queues[0], NodeName, ct).ConfigureAwait(false);
            else
                for (int i = 0; i < numQueues; i++)
                    await WriteQueueKeysAsync(t, _queues[i], $"{NodeName}/queue-{i}", ct).ConfigureAwait(false);
            await t.WriteAsync(NodeName + "/request-rx-copy", "1", ct).ConfigureAwait(false);
            await t.WriteAsync(NodeName + "/feature-rx-notify", "1", ct).ConfigureAwait(false);
            await t.WriteAsync(NodeName + "/feature-sg", "1", ct).ConfigureAwait(false);
            await t.WriteAsync(NodeName + "/feature-gso-tcpv4", "1", ct).ConfigureAwait(false);
            await t.WriteAsync(NodeName + "/feature-gso-tcpv6", "1", ct).ConfigureAwait(false);
            await t.WriteAsync(NodeName + "/feature-ipv6-csum-offload", "1", ct).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
    }

    private static async Task WriteQueueKeysAsync(XenStoreTransaction t, NetfrontQueue q, string dir, CancellationToken ct)
    {
        await t.WriteAsync(dir + "/tx-ring-ref", Num(q.TxRingRef), ct).ConfigureAwait(false);
        await t.WriteAsync(dir + "/rx-ring-ref", Num(q.RxRingRef), ct).ConfigureAwait(false);
        if (q.TxPort == q.RxPort)
        {
            await t.WriteAsync(dir + "/event-channel", Num(q.TxPort), ct).ConfigureAwait(false);
        }
        else
        {
            await t.WriteAsync(dir + "/event-channel-tx", Num(q.TxPort), ct).ConfigureAwait(false);
            await t.WriteAsync(dir + "/event-channel-rx", Num(q.RxPort), ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sends one frame; completes with the worst NETIF_RSP status of its slots, or
    /// NETIF_RSP_DROPPED for a frame that was in flight when the guest was suspended (Linux frees
    /// it on resume without an answer). While a suspend has the device detached, the frame waits
    /// for the reconnection, as it would in the qdisc.
    /// </summary>
    public async Task<short> SendAsync(ReadOnlyMemory<byte> frame, NetfrontSendOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new NetfrontSendOptions();
        if (frame.Length > Rings.Netif.Netif.MaxTxSize)
            throw new ArgumentException($"a frame is at most {Rings.Netif.Netif.MaxTxSize} bytes");
        await _attached.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        var queues = _queues;
        // Not IsConnected: xennet_connect attaches the device just before the state switch.
        if (queues.Length == 0 || State is XenbusState.Closing or XenbusState.Closed)
            throw new InvalidOperationException($"{NodeName} is not connected (state {State})");
        int index = options.Queue ?? (int)((uint)Interlocked.Increment(ref _nextQueue) % (uint)queues.Length);
        return await queues[Math.Min(index, queues.Length - 1)].SendAsync(frame, options, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask<ReceivedFrame> ReceiveAsync(CancellationToken cancellationToken = default) => _received.Reader.ReadAsync(cancellationToken);

    public bool TryReceive(out ReceivedFrame frame) => _received.Reader.TryRead(out frame!);

    /// <summary>Re-initialise (driver reload, resume): queues freed, Initialising; a backend in InitWait reconnects us.</summary>
    public async Task ReconnectAsync(CancellationToken cancellationToken = default)
    {
        await ResetConnectionAsync(FreeQueues, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        await WithGateAsync(async () =>
        {
            FreeQueues();
            await SwitchStateAsync(XenbusState.Initialising, cancellationToken).ConfigureAwait(false);
            BackendState = XenbusStates.Parse(await Xs.TryReadStringAsync(OtherEnd + "/state", cancellationToken).ConfigureAwait(false));
            if (BackendState == XenbusState.InitWait && State == XenbusState.Initialising)
            {
                await ConnectAsync(cancellationToken).ConfigureAwait(false);
                await SwitchStateAsync(XenbusState.Connected, cancellationToken).ConfigureAwait(false);
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Guest-side shutdown: Closing, wait for the backend to close, then Closed (see SimulatedBlkfront.CloseAsync).</summary>
    public async Task CloseAsync(TimeSpan timeout)
    {
        await WithGateAsync(() => SwitchStateAsync(XenbusState.Closing, Stopping), Stopping).ConfigureAwait(false);
        await WaitUntilAsync(() => BackendState is XenbusState.Closing or XenbusState.Closed, timeout, "backend closing").ConfigureAwait(false);
        await WithGateAsync(async () =>
        {
            FreeQueues();
            await SwitchStateAsync(XenbusState.Closed, Stopping).ConfigureAwait(false);
        }, Stopping).ConfigureAwait(false);
    }

    private void StartEventLoop()
    {
        _eventStop?.Cancel();
        var stop = CancellationTokenSource.CreateLinkedTokenSource(Stopping);
        _eventStop = stop;
        var queues = _queues;
        var events = _events;
        _eventLoop = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    uint port = await events.WaitPendingAsync(stop.Token).ConfigureAwait(false);
                    foreach (var q in queues)
                    {
                        if (q.TxPort == port) q.CollectTx();
                        if (q.RxPort == port) q.PollRx();
                    }
                    events.Unmask(port);
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                Fail(e);
            }
            catch (Exception)
            {
            }
        });
    }

    private void FreeQueues()
    {
        _eventStop?.Cancel();
        try
        {
            _eventLoop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
        var queues = _queues;
        foreach (var q in queues)
            q.Teardown();
        Retire(queues);
    }

    private protected override void StopRings()
    {
        FreeQueues();
        // Halted while suspended: what was in flight is dropped now, so no sender waits forever.
        var drops = _pendingDrops;
        _pendingDrops = [];
        foreach (var drop in drops)
            drop();
        Retire(_frozen);
        _events.Dispose();
        _received.Writer.TryComplete();
        // A halted guest sends nothing more: a sender held by a suspend gets an error, not a hang.
        _attached.TrySetResult();
    }

    public override bool SupportsSuspend => true;

    /// <summary>
    /// The guest freezes: both rings stop being served by us, tx frames in flight are kept to be
    /// dropped at resume, and senders wait (netif_device_detach). Whatever the old backend still
    /// writes into the old rx buffers is never read: those buffers die with the old domain.
    /// </summary>
    private protected override void SuspendRings()
    {
        _attached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _eventStop?.Cancel();
        try
        {
            _eventLoop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
        _pendingDrops = [.. _queues.SelectMany(q => q.Freeze())];
        _frozen = _queues;
        _queues = [];
    }

    private IReadOnlyList<Action> _pendingDrops = [];

    /// <summary>
    /// netfront_resume -> xennet_disconnect_backend in the new domain: the frozen queues are
    /// destroyed (their tx frames dropped unanswered, their rx buffers simply forgotten: Linux
    /// posts fresh ones in xennet_connect), and event channels are opened on the new domid.
    /// The handshake then runs from scratch when the new backend reaches InitWait.
    /// </summary>
    private protected override void ResumeRings()
    {
        var drops = _pendingDrops;
        _pendingDrops = [];
        foreach (var drop in drops)
            drop();
        Retire(_frozen);
        Resumes++;
        _events.Dispose();
        _events = Guest.Host.OpenEventChannels(Guest.Domid);
    }

    private static TaskCompletionSource Attached()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.TrySetResult();
        return open;
    }

    private async Task<uint> ReadBackendUIntAsync(string key, uint fallback, CancellationToken ct)
    {
        string? text = await Xs.TryReadStringAsync(OtherEnd + "/" + key, ct).ConfigureAwait(false);
        return text is not null && uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out uint v) ? v : fallback;
    }

    private static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);
}
