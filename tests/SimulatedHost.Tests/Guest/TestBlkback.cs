using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using XenBackends.Native;
using XenBackends.Rings;
using XenBackends.Rings.Blkif;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Tests.Guest;

public sealed record TestBlkbackConfig
{
    public uint MaxRingPageOrder { get; init; } = 4;
    public uint? MaxQueues { get; init; } = 4;
    public uint? MaxIndirectSegments { get; init; } = 256;
    public ulong Sectors { get; init; } = 4096;
    public bool FeaturePersistent { get; init; }
    public bool FlushCache { get; init; } = true;
    public bool Barrier { get; init; } = true;
    public bool Discard { get; init; } = true;
}

/// <summary>What the test backend saw of one request.</summary>
public readonly record struct SeenRequest(byte Operation, byte IndirectOp, ulong Sector, int Segments, ulong NrSectors, byte DiscardFlag, int Queue);

/// <summary>
/// The smallest blkback that does the xenbus handshake like Linux's and serves a RAM disk: enough to prove
/// the simulated blkfront without depending on the real backend. Not hardened: it trusts the frontend.
/// </summary>
public sealed class TestBlkback : IAsyncDisposable
{
    private readonly XenStoreClient _xs;
    private readonly WatchRouter _router;
    private readonly IGrantMapper _mapper;
    private readonly SimulatedEventChannels _events;
    private readonly TestBlkbackConfig _config;
    private readonly ushort _domid;
    private readonly CancellationTokenSource _stop = new();
    // Linux runs every xenbus callback of a backend on the one xenwatch thread, so a backend closing on
    // its own and the frontend-state handler never interleave. Here CloseAsync runs on the test's thread
    // and the handler on the watch loop: without this lock the handler could read _state mid-close
    // (Closing) with a stale frontend Connected and map the rings again while the frontend frees them.
    private readonly SemaphoreSlim _transition = new(1, 1);
    private readonly List<(BackRing Ring, SharedMemory Map, uint Port)> _queues = [];
    private readonly Lock _lock = new();
    private Task _stateLoop = Task.CompletedTask;
    private Task _eventLoop = Task.CompletedTask;
    private BlkifAbi _abi;
    private XenbusState _state = XenbusState.Initialising;

    private TestBlkback(XenStoreClient xs, SimulatedXenHost host, ushort domid, string backendPath, TestBlkbackConfig config)
    {
        _xs = xs;
        _router = new WatchRouter(xs);
        _mapper = host.CreateGrantMapper();
        _events = host.OpenEventChannels(0);
        _domid = domid;
        BackendPath = backendPath;
        _config = config;
        Disk = new byte[config.Sectors * 512];
    }

    public string BackendPath { get; }
    public string FrontendPath { get; private set; } = "";
    public byte[] Disk { get; }
    public ConcurrentQueue<SeenRequest> Requests { get; } = new();
    public SortedDictionary<string, string> FrontendKeysAtConnect { get; private set; } = [];
    public XenbusState FrontendStateAtConnect { get; private set; }
    public BlkifAbi Abi => _abi;
    public int Connects { get; private set; }
    public Exception? Fault { get; private set; }

    /// <summary>Waits for the toolstack to create the backend directory, then publishes features and InitWait.</summary>
    public static async Task<TestBlkback> StartAsync(SimulatedHostHarness h, ushort domid, int devid, TestBlkbackConfig? config = null)
    {
        var xs = await h.ConnectDom0Async();
        string be = $"/local/domain/0/backend/vbd/{domid}/{devid}";
        var back = new TestBlkback(xs, h.Host, domid, be, config ?? new TestBlkbackConfig());
        await using (var created = await back._router.SubscribeAsync(be + "/frontend"))
        {
            using var cts = new CancellationTokenSource(SimulatedHostHarness.Bound);
            while (await xs.TryReadStringAsync(be + "/frontend") is null)
                await created.WaitAsync(cts.Token);
        }
        back.FrontendPath = await xs.ReadStringAsync(be + "/frontend");
        var c = back._config;
        if (c.MaxIndirectSegments is { } seg) await xs.WriteAsync(be + "/feature-max-indirect-segments", Num(seg));
        if (c.MaxQueues is { } q) await xs.WriteAsync(be + "/multi-queue-max-queues", Num(q));
        await xs.WriteAsync(be + "/max-ring-page-order", Num(c.MaxRingPageOrder));
        await back.SetStateAsync(XenbusState.InitWait);
        back._eventLoop = Task.Run(back.ServeAsync);
        back._stateLoop = Task.Run(back.FollowFrontendAsync);
        return back;
    }

    /// <summary>Online resize the way Linux blkback does it: new sectors, then Connected rewritten.</summary>
    public async Task ResizeAsync(ulong sectors)
    {
        await _xs.WriteAsync(BackendPath + "/sectors", Num(sectors));
        await _xs.WriteAsync(BackendPath + "/state", XenbusStates.Format(XenbusState.Connected));
    }

    /// <summary>The backend closes on its own (unbind, driver unload): Closing, then Closed.</summary>
    public async Task CloseAsync()
    {
        await _transition.WaitAsync();
        try
        {
            Disconnect();
            await SetStateAsync(XenbusState.Closing);
            await SetStateAsync(XenbusState.Closed);
        }
        finally
        {
            _transition.Release();
        }
    }

    private async Task FollowFrontendAsync()
    {
        try
        {
            await using var watch = await _router.SubscribeAsync(FrontendPath + "/state", _stop.Token);
            while (true)
            {
                await watch.WaitAsync(_stop.Token);
                // The frontend state is read under the lock, so it is judged against a settled _state.
                await _transition.WaitAsync(_stop.Token);
                try
                {
                    var fe = XenbusStates.Parse(await _xs.TryReadStringAsync(FrontendPath + "/state", _stop.Token));
                    switch (fe)
                    {
                        case XenbusState.Initialised or XenbusState.Connected when _state != XenbusState.Connected && _state != XenbusState.Closed:
                            await ConnectAsync(fe);
                            break;
                        case XenbusState.Closing when _state is not XenbusState.Closed:
                            Disconnect();
                            await SetStateAsync(XenbusState.Closing);
                            break;
                        case XenbusState.Closed or XenbusState.Unknown when _state is not XenbusState.Closed:
                            Disconnect();
                            await SetStateAsync(XenbusState.Closed);
                            break;
                        case XenbusState.Initialising when _state == XenbusState.Closed:
                            await SetStateAsync(XenbusState.InitWait);
                            break;
                    }
                }
                finally
                {
                    _transition.Release();
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Fault = e;
        }
    }

    private async Task ConnectAsync(XenbusState frontendState)
    {
        FrontendStateAtConnect = frontendState;
        FrontendKeysAtConnect = await XsDump.TreeAsync(_xs, FrontendPath);
        var keys = FrontendKeysAtConnect;
        _abi = BlkifProtocol.Parse(keys.GetValueOrDefault("protocol"));
        int order = int.Parse(keys.GetValueOrDefault("ring-page-order", "0"), CultureInfo.InvariantCulture);
        int nq = int.Parse(keys.GetValueOrDefault("multi-queue-num-queues", "1"), CultureInfo.InvariantCulture);
        Disconnect();
        lock (_lock)
        {
            for (int q = 0; q < nq; q++)
            {
                string prefix = nq == 1 ? "" : $"queue-{q}/";
                var refs = new uint[1 << order];
                for (int i = 0; i < refs.Length; i++)
                    refs[i] = uint.Parse(order == 0 ? keys[prefix + "ring-ref"] : keys[$"{prefix}ring-ref{i}"], CultureInfo.InvariantCulture);
                var map = _mapper.Map(_domid, refs, writable: true);
                uint port = _events.BindInterdomain(_domid, uint.Parse(keys[prefix + "event-channel"], CultureInfo.InvariantCulture));
                _queues.Add((BackRing.Attach(map, BlkifProtocol.Layout(_abi)), map, port));
            }
        }
        var c = _config;
        await _xs.RunTransactionAsync(async t =>
        {
            await t.WriteAsync(BackendPath + "/feature-flush-cache", c.FlushCache ? "1" : "0");
            if (c.Discard)
            {
                await t.WriteAsync(BackendPath + "/feature-discard", "1");
                await t.WriteAsync(BackendPath + "/discard-granularity", "4096");
                await t.WriteAsync(BackendPath + "/discard-alignment", "0");
                await t.WriteAsync(BackendPath + "/discard-secure", "1");
            }
            await t.WriteAsync(BackendPath + "/feature-barrier", c.Barrier ? "1" : "0");
            await t.WriteAsync(BackendPath + "/feature-persistent", c.FeaturePersistent ? "1" : "0");
            await t.WriteAsync(BackendPath + "/sectors", Num(c.Sectors));
            await t.WriteAsync(BackendPath + "/info", "0");
            await t.WriteAsync(BackendPath + "/sector-size", "512");
            await t.WriteAsync(BackendPath + "/physical-sector-size", "4096");
        });
        Connects++;
        await SetStateAsync(XenbusState.Connected);
    }

    private async Task ServeAsync()
    {
        try
        {
            while (true)
            {
                uint port = await _events.WaitPendingAsync(_stop.Token);
                lock (_lock)
                    for (int q = 0; q < _queues.Count; q++)
                        if (_queues[q].Port == port)
                            Serve(q);
                _events.Unmask(port);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is not ObjectDisposedException)
        {
            Fault = e;
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void Serve(int q)
    {
        var (ring, _, port) = _queues[q];
        while (true)
        {
            while (ring.TryConsumeBlkifRequest(_abi, out var req) == RingRead.Item)
                // As Linux blkback: an indirect request is answered with its indirect_op.
                ring.PutBlkifResponse(req.Id, req.Operation == BlkifOp.Indirect ? req.IndirectOp : req.Operation, Handle(req, q));
            if (ring.PushResponsesAndCheckNotify())
                _events.Notify(port);
            if (ring.FinalCheckForRequests() != RingPoll.Work)
                return;
        }
    }

    private short Handle(in BlkifRequest req, int q)
    {
        bool indirect = req.Operation == BlkifOp.Indirect;
        Requests.Enqueue(new SeenRequest(req.Operation, req.IndirectOp, req.SectorNumber, req.NrSegments, req.NrSectors, req.DiscardFlag, q));
        if (!req.IsValid)
            return req.RejectionStatus;
        byte op = indirect ? req.IndirectOp : req.Operation;
        switch (op)
        {
            case BlkifOp.FlushDiskCache when req.NrSegments == 0:
                return BlkifRsp.Okay;
            case BlkifOp.Discard:
                Disk.AsSpan((int)req.SectorNumber * 512, (int)req.NrSectors * 512).Clear();
                return BlkifRsp.Okay;
            case BlkifOp.Read or BlkifOp.Write or BlkifOp.WriteBarrier:
                var segments = Segments(req, indirect);
                long at = (long)req.SectorNumber * 512;
                foreach (var seg in segments)
                {
                    int offset = seg.FirstSect * 512, length = (seg.LastSect - seg.FirstSect + 1) * 512;
                    using var map = _mapper.Map(_domid, [seg.Gref], writable: op == BlkifOp.Read);
                    if (op == BlkifOp.Read)
                        Disk.AsSpan((int)at, length).CopyTo(map.Span[offset..]);
                    else
                        map.Span.Slice(offset, length).CopyTo(Disk.AsSpan((int)at));
                    at += length;
                }
                return BlkifRsp.Okay;
            default:
                return BlkifRsp.EOpNotSupp;
        }
    }

    private List<BlkifRequestSegment> Segments(in BlkifRequest req, bool indirect)
    {
        var list = new List<BlkifRequestSegment>();
        if (!indirect)
        {
            for (int i = 0; i < req.NrSegments; i++)
                list.Add(req.Segments[i]);
            return list;
        }
        var grefs = new uint[req.NrIndirectPages];
        for (int i = 0; i < grefs.Length; i++)
            grefs[i] = req.IndirectGrefs[i];
        using var pages = _mapper.Map(_domid, grefs, writable: false);
        var all = MemoryMarshal.Cast<byte, BlkifRequestSegment>(pages.Span);
        for (int i = 0; i < req.NrSegments; i++)
            list.Add(all[i]);
        return list;
    }

    private void Disconnect()
    {
        lock (_lock)
        {
            foreach (var (_, map, port) in _queues)
            {
                try { _events.Unbind(port); } catch (XenNativeException) { }
                map.Dispose();
            }
            _queues.Clear();
        }
    }

    private async Task SetStateAsync(XenbusState state)
    {
        _state = state;
        await _xs.WriteAsync(BackendPath + "/state", XenbusStates.Format(state));
    }

    private static string Num(ulong v) => v.ToString(CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _stateLoop;
        await _eventLoop;
        Disconnect();
        _events.Dispose();
        _mapper.Dispose();
        _transition.Dispose();
        await _router.DisposeAsync();
        await _xs.DisposeAsync();
    }
}
