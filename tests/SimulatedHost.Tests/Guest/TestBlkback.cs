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
public sealed class TestBlkback : TestXenbusBackend
{
    private readonly TestBlkbackConfig _config;
    private readonly List<(BackRing Ring, SharedMemory Map, uint Port)> _queues = [];
    private BlkifAbi _abi;

    private TestBlkback(XenStoreClient xs, SimulatedXenHost host, ushort domid, string backendPath, TestBlkbackConfig config)
        : base(xs, host, domid, backendPath)
    {
        _config = config;
        Disk = new byte[config.Sectors * 512];
    }

    public byte[] Disk { get; }
    public ConcurrentQueue<SeenRequest> Requests { get; } = new();
    public BlkifAbi Abi => _abi;

    /// <summary>Waits for the toolstack to create the backend directory, then publishes features and InitWait.</summary>
    public static async Task<TestBlkback> StartAsync(SimulatedHostHarness h, ushort domid, int devid, TestBlkbackConfig? config = null)
    {
        var xs = await h.ConnectDom0Async();
        string be = $"/local/domain/0/backend/vbd/{domid}/{devid}";
        var back = new TestBlkback(xs, h.Host, domid, be, config ?? new TestBlkbackConfig());
        await back.WaitForToolstackAsync();
        var c = back._config;
        if (c.MaxIndirectSegments is { } seg) await xs.WriteAsync(be + "/feature-max-indirect-segments", Num(seg));
        if (c.MaxQueues is { } q) await xs.WriteAsync(be + "/multi-queue-max-queues", Num(q));
        await xs.WriteAsync(be + "/max-ring-page-order", Num(c.MaxRingPageOrder));
        await back.StartAsync();
        return back;
    }

    /// <summary>Online resize the way Linux blkback does it: new sectors, then Connected rewritten.</summary>
    public async Task ResizeAsync(ulong sectors)
    {
        await Xs.WriteAsync(BackendPath + "/sectors", Num(sectors));
        await Xs.WriteAsync(BackendPath + "/state", XenbusStates.Format(XenbusState.Connected));
    }

    // Linux blkback connects on Initialised or Connected (frontend_changed).
    protected override bool ShouldConnect(XenbusState frontend) =>
        frontend is XenbusState.Initialised or XenbusState.Connected && State != XenbusState.Connected && State != XenbusState.Closed;

    protected override async Task ConnectAsync(XenbusState frontendState)
    {
        var keys = await ReadFrontendKeysAsync(frontendState);
        _abi = BlkifProtocol.Parse(keys.GetValueOrDefault("protocol"));
        int order = int.Parse(keys.GetValueOrDefault("ring-page-order", "0"), CultureInfo.InvariantCulture);
        int nq = int.Parse(keys.GetValueOrDefault("multi-queue-num-queues", "1"), CultureInfo.InvariantCulture);
        Disconnect();
        lock (RingLock)
        {
            for (int q = 0; q < nq; q++)
            {
                string prefix = nq == 1 ? "" : $"queue-{q}/";
                var refs = new uint[1 << order];
                for (int i = 0; i < refs.Length; i++)
                    refs[i] = uint.Parse(order == 0 ? keys[prefix + "ring-ref"] : keys[$"{prefix}ring-ref{i}"], CultureInfo.InvariantCulture);
                var map = Mapper.Map(Domid, refs, writable: true);
                uint port = Events.BindInterdomain(Domid, uint.Parse(keys[prefix + "event-channel"], CultureInfo.InvariantCulture));
                _queues.Add((BackRing.Attach(map, BlkifProtocol.Layout(_abi)), map, port));
            }
        }
        var c = _config;
        await Xs.RunTransactionAsync(async t =>
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

    protected override void ServePort(uint port)
    {
        for (int q = 0; q < _queues.Count; q++)
            if (_queues[q].Port == port)
                Serve(q);
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
                Events.Notify(port);
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
                    using var map = Mapper.Map(Domid, [seg.Gref], writable: op == BlkifOp.Read);
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
        using var pages = Mapper.Map(Domid, grefs, writable: false);
        var all = MemoryMarshal.Cast<byte, BlkifRequestSegment>(pages.Span);
        for (int i = 0; i < req.NrSegments; i++)
            list.Add(all[i]);
        return list;
    }

    protected override void Disconnect()
    {
        lock (RingLock)
        {
            foreach (var (_, map, port) in _queues)
            {
                try { Events.Unbind(port); } catch (XenNativeException) { }
                map.Dispose();
            }
            _queues.Clear();
        }
    }

    private static string Num(ulong v) => v.ToString(CultureInfo.InvariantCulture);
}
