using System.Collections.Concurrent;
using System.Globalization;
using XenBackends.Native;
using XenBackends.Rings;
using XenBackends.Rings.Netif;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Tests.Guest;

public sealed record TestNetbackConfig
{
    public uint? MaxQueues { get; init; } = 4;
    public bool SplitEventChannels { get; init; } = true;
    public bool RxCopy { get; init; } = true;
}

/// <summary>A frame the test backend took off a tx ring.</summary>
public sealed record SeenFrame(byte[] Data, ushort Flags, int Slots, NetifExtraInfo? Gso, int Queue);

/// <summary>
/// The smallest netback that does Linux's handshake (features at probe, InitWait, connect on frontend
/// Connected, Connected only once hotplug-status says connected) and loops every transmitted frame back
/// into the same queue's rx ring. Not hardened: it trusts the frontend.
/// </summary>
public sealed class TestNetback : TestXenbusBackend
{
    private readonly TestNetbackConfig _config;
    private readonly List<Queue> _queues = [];
    private readonly TaskCompletionSource _firstConnect = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private TestNetback(XenStoreClient xs, SimulatedXenHost host, ushort domid, string backendPath, TestNetbackConfig config)
        : base(xs, host, domid, backendPath)
    {
        _config = config;
    }

    public ConcurrentQueue<SeenFrame> Frames { get; } = new();
    public string? HotplugStatusAtConnected { get; private set; }

    /// <summary>
    /// Completes once this backend has mapped the rings and written Connected. Netfront goes Connected
    /// before netback does (on InitWait, as Linux), so a frontend's Connected says nothing about the backend.
    /// </summary>
    public Task WaitConnectedAsync(TimeSpan timeout) => _firstConnect.Task.WaitAsync(timeout);

    public static async Task<TestNetback> StartAsync(SimulatedHostHarness h, ushort domid, int devid, TestNetbackConfig? config = null)
    {
        var xs = await h.ConnectDom0Async();
        string be = $"/local/domain/0/backend/vif/{domid}/{devid}";
        var back = new TestNetback(xs, h.Host, domid, be, config ?? new TestNetbackConfig());
        await back.WaitForToolstackAsync();
        var c = back._config;
        await xs.RunTransactionAsync(async t =>
        {
            foreach (string f in new[] { "feature-sg", "feature-gso-tcpv4", "feature-gso-tcpv6", "feature-ipv6-csum-offload" })
                await t.WriteAsync(be + "/" + f, "1");
            await t.WriteAsync(be + "/feature-rx-copy", c.RxCopy ? "1" : "0");
            await t.WriteAsync(be + "/feature-rx-flip", "0");
            await t.WriteAsync(be + "/feature-multicast-control", "1");
            await t.WriteAsync(be + "/feature-dynamic-multicast-control", "1");
        });
        await xs.WriteAsync(be + "/feature-split-event-channels", c.SplitEventChannels ? "1" : "0");
        if (c.MaxQueues is { } q) await xs.WriteAsync(be + "/multi-queue-max-queues", q.ToString(CultureInfo.InvariantCulture));
        await xs.WriteAsync(be + "/feature-ctrl-ring", "1");
        await back.StartAsync();
        return back;
    }

    // Linux netback connects once the frontend is Connected (frontend_changed).
    protected override bool ShouldConnect(XenbusState frontend) => frontend == XenbusState.Connected && State == XenbusState.InitWait;

    protected override void OnFault(Exception e) => _firstConnect.TrySetException(e);

    protected override async Task ConnectAsync(XenbusState frontendState)
    {
        var keys = await ReadFrontendKeysAsync(frontendState);
        if (keys.GetValueOrDefault("request-rx-copy") != "1")
            throw new InvalidDataException("frontend did not request rx-copy");
        int nq = int.Parse(keys.GetValueOrDefault("multi-queue-num-queues", "1"), CultureInfo.InvariantCulture);
        lock (RingLock)
        {
            for (int q = 0; q < nq; q++)
            {
                string p = nq == 1 ? "" : $"queue-{q}/";
                var txMap = Mapper.Map(Domid, [uint.Parse(keys[p + "tx-ring-ref"], CultureInfo.InvariantCulture)], writable: true);
                var rxMap = Mapper.Map(Domid, [uint.Parse(keys[p + "rx-ring-ref"], CultureInfo.InvariantCulture)], writable: true);
                uint txPort, rxPort;
                if (keys.TryGetValue(p + "event-channel-tx", out string? tx))
                {
                    txPort = Events.BindInterdomain(Domid, uint.Parse(tx, CultureInfo.InvariantCulture));
                    rxPort = Events.BindInterdomain(Domid, uint.Parse(keys[p + "event-channel-rx"], CultureInfo.InvariantCulture));
                }
                else
                {
                    txPort = rxPort = Events.BindInterdomain(Domid, uint.Parse(keys[p + "event-channel"], CultureInfo.InvariantCulture));
                }
                _queues.Add(new Queue(q, BackRing.Attach(txMap, NetifRings.Tx), BackRing.Attach(rxMap, NetifRings.Rx), txMap, rxMap, txPort, rxPort));
            }
        }
        // Linux netback defers Connected until the hotplug script has run.
        await using (var hotplug = await Router.SubscribeAsync(BackendPath + "/hotplug-status", Stopping))
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(Stopping);
            cts.CancelAfter(SimulatedHostHarness.Bound);
            while ((HotplugStatusAtConnected = await Xs.TryReadStringAsync(BackendPath + "/hotplug-status", Stopping)) != "connected")
                await hotplug.WaitAsync(cts.Token);
        }
        Connects++;
        await SetStateAsync(XenbusState.Connected);
        _firstConnect.TrySetResult();
        lock (RingLock)
            foreach (var q in _queues)
                Pump(q);
    }

    protected override void ServePort(uint port)
    {
        foreach (var q in _queues)
            if (q.TxPort == port || q.RxPort == port)
                Pump(q);
    }

    private void Pump(Queue q)
    {
        do
        {
            while (q.Tx.TryConsumeRequest(out NetifTxRequest first) == RingRead.Item)
                TakeFrame(q, first);
            if (q.Tx.PushResponsesAndCheckNotify())
                Events.Notify(q.TxPort);
        }
        while (q.Tx.FinalCheckForRequests() == RingPoll.Work);
        DeliverPending(q);
    }

    private void TakeFrame(Queue q, NetifTxRequest first)
    {
        NetifExtraInfo? gso = null;
        var requests = new List<NetifTxRequest> { first };
        q.Tx.PutResponse(new NetifTxResponse { Id = first.Id, Status = NetifRsp.Okay });
        if ((first.Flags & NetTxFlags.ExtraInfo) != 0)
        {
            q.Tx.TryConsumeRequest(out NetifExtraInfo extra);
            gso = extra;
            q.Tx.PutResponse(new NetifTxResponse { Status = NetifRsp.Null });
        }
        var last = first;
        while ((last.Flags & NetTxFlags.MoreData) != 0 && q.Tx.TryConsumeRequest(out last) == RingRead.Item)
        {
            requests.Add(last);
            q.Tx.PutResponse(new NetifTxResponse { Id = last.Id, Status = NetifRsp.Okay });
        }
        var data = new byte[first.Size];
        int at = 0;
        for (int i = requests.Count - 1; i >= 1; i--)
            at += requests[i].Size;
        int firstLength = first.Size - at;
        at = 0;
        foreach (var (req, i) in requests.Select((r, i) => (r, i)))
        {
            int length = i == 0 ? firstLength : req.Size;
            using var map = Mapper.Map(Domid, [req.Gref], writable: false);
            map.Span.Slice(req.Offset, length).CopyTo(data.AsSpan(at));
            at += length;
        }
        var frame = new SeenFrame(data, first.Flags, requests.Count, gso, q.Index);
        Frames.Enqueue(frame);
        q.Pending.Enqueue(frame);
    }

    private void DeliverPending(Queue q)
    {
        while (q.Pending.TryPeek(out var frame))
        {
            int slots = Math.Max(1, (frame.Data.Length + 4095) / 4096);
            if (q.Rx.PollRequests(out uint available) == RingPoll.Faulted || available < slots)
                break;
            q.Pending.Dequeue();
            for (int s = 0; s < slots; s++)
            {
                q.Rx.TryConsumeRequest(out NetifRxRequest req);
                int offset = s * 4096, length = Math.Min(4096, frame.Data.Length - offset);
                using (var map = Mapper.Map(Domid, [req.Gref], writable: true))
                    frame.Data.AsSpan(offset, length).CopyTo(map.Span);
                ushort flags = s + 1 < slots ? NetRxFlags.MoreData : (ushort)0;
                if (s == 0 && (frame.Flags & NetTxFlags.CsumBlank) != 0)
                    flags |= NetRxFlags.CsumBlank | NetRxFlags.DataValidated;
                q.Rx.PutResponse(new NetifRxResponse { Id = req.Id, Offset = 0, Flags = flags, Status = (short)length });
            }
        }
        if (q.Rx.PushResponsesAndCheckNotify())
            Events.Notify(q.RxPort);
    }

    protected override void Disconnect()
    {
        lock (RingLock)
        {
            foreach (var q in _queues)
            {
                foreach (uint port in q.TxPort == q.RxPort ? new[] { q.TxPort } : new[] { q.TxPort, q.RxPort })
                {
                    try { Events.Unbind(port); } catch (XenNativeException) { }
                }
                q.TxMap.Dispose();
                q.RxMap.Dispose();
            }
            _queues.Clear();
        }
    }

    private sealed record Queue(int Index, BackRing Tx, BackRing Rx, SharedMemory TxMap, SharedMemory RxMap, uint TxPort, uint RxPort)
    {
        public Queue<SeenFrame> Pending { get; } = new();
    }
}
