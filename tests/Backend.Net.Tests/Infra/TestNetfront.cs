using System.Runtime.CompilerServices;
using XenBackends.Rings;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost;
using XenBackends.XenStore;

namespace XenBackends.Backend.Net.Tests.Infra;

/// <summary>A received frame as the guest reassembled it from its rx responses.</summary>
internal sealed record GuestFrame(byte[] Data, ushort FirstFlags, NetifExtraInfo? Gso, int Slots, short ErrorStatus, NetifExtraInfo? Hash = null);

/// <summary>
/// A minimal netfront for tests: tx/rx rings on granted guest pages, its own event channel(s), and
/// raw access to put any request a hostile guest could.
/// </summary>
internal sealed class TestNetfront
{
    private static readonly RingSlotLayout TxLayout = RingSlotLayout.Of<NetifTxRequest, NetifTxResponse>();
    private static readonly RingSlotLayout RxLayout = RingSlotLayout.Of<NetifRxRequest, NetifRxResponse>();

    private readonly SimulatedDomain _dom;
    private readonly (uint Frame, uint Gref)[] _txPool;
    private readonly (uint Frame, uint Gref)[] _rxPool;
    private int _txNext;
    private ushort _nextId;

    /// <summary>Pools are granted up front; several queues must share the guest's 1024 grant entries.</summary>
    public TestNetfront(SimulatedDomain dom, bool split, int txPages = 64, int rxPages = 256)
    {
        _dom = dom;
        _txPool = new (uint, uint)[txPages];
        uint txFrame = dom.Memory.AllocatePage(), rxFrame = dom.Memory.AllocatePage();
        TxRef = dom.Grants.GrantAccess(0, txFrame, readOnly: false);
        RxRef = dom.Grants.GrantAccess(0, rxFrame, readOnly: false);
        Tx = FrontRing.Initialize(new GuestPage(dom.Memory, txFrame), TxLayout);
        Rx = FrontRing.Initialize(new GuestPage(dom.Memory, rxFrame), RxLayout);
        TxPort = dom.EventChannels.BindUnboundPort(0);
        RxPort = split ? dom.EventChannels.BindUnboundPort(0) : TxPort;
        for (int i = 0; i < _txPool.Length; i++)
        {
            uint f = dom.Memory.AllocatePage();
            _txPool[i] = (f, dom.Grants.GrantAccess(0, f, readOnly: true));
        }
        _rxPool = new (uint, uint)[Math.Min(rxPages, (int)Rx.Size)];
        for (int i = 0; i < _rxPool.Length; i++)
        {
            uint f = dom.Memory.AllocatePage();
            _rxPool[i] = (f, dom.Grants.GrantAccess(0, f, readOnly: false));
        }
    }

    public FrontRing Tx { get; }
    public FrontRing Rx { get; }
    public uint TxRef { get; }
    public uint RxRef { get; }
    public uint TxPort { get; }
    public uint RxPort { get; }

    public async Task WriteKeysAsync(XenStoreClient store, string frontendPath, IReadOnlyDictionary<string, string> features)
    {
        await store.WriteAsync(frontendPath + "/tx-ring-ref", TxRef.ToString(), default);
        await store.WriteAsync(frontendPath + "/rx-ring-ref", RxRef.ToString(), default);
        if (TxPort == RxPort)
        {
            await store.WriteAsync(frontendPath + "/event-channel", TxPort.ToString(), default);
        }
        else
        {
            await store.WriteAsync(frontendPath + "/event-channel-tx", TxPort.ToString(), default);
            await store.WriteAsync(frontendPath + "/event-channel-rx", RxPort.ToString(), default);
        }
        foreach (var (k, v) in features)
            await store.WriteAsync(frontendPath + "/" + k, v, default);
    }

    /// <summary>A granted read-only page holding <paramref name="data"/> at <paramref name="offset"/>.</summary>
    public uint StageTxData(ReadOnlySpan<byte> data, int offset = 0)
    {
        var (frame, gref) = _txPool[_txNext++ % _txPool.Length];
        data.CopyTo(_dom.Memory.Page(frame)[offset..]);
        return gref;
    }

    public ushort NextId() => _nextId++;

    public void PutTx(uint gref, ushort offset, ushort flags, ushort size) =>
        Tx.PutRequest(new NetifTxRequest { Gref = gref, Offset = offset, Flags = flags, Id = NextId(), Size = size });

    public void PutExtra(NetifExtraInfo extra) => Tx.PutRequest(extra);

    /// <summary>Queues one frame as netfront would: chunks of at most <paramref name="chunk"/> bytes, first size = total.</summary>
    public int QueueFrame(byte[] frame, ushort flags = 0, NetifExtraInfo? gso = null, int chunk = 4096)
    {
        int slots = 0;
        int pos = 0;
        bool first = true;
        while (first || pos < frame.Length)
        {
            int len = Math.Min(chunk, frame.Length - pos);
            uint gref = StageTxData(frame.AsSpan(pos, len));
            ushort f = first ? flags : (ushort)0;
            if (pos + len < frame.Length)
                f |= NetTxFlags.MoreData;
            if (first && gso is not null)
                f |= NetTxFlags.ExtraInfo;
            PutTx(gref, 0, f, (ushort)(first ? frame.Length : len));
            slots++;
            if (first && gso is { } extra)
            {
                PutExtra(extra);
                slots++;
            }
            first = false;
            pos += len;
        }
        return slots;
    }

    public void Kick() => _dom.EventChannels.Notify(TxPort);

    public void Push()
    {
        Tx.PushRequestsAndCheckNotify();
        _dom.EventChannels.Notify(TxPort);
    }

    /// <summary>Waits (bounded) for exactly <paramref name="count"/> tx responses.</summary>
    public NetifTxResponse[] WaitTxResponses(int count, int timeoutMs = 5000)
    {
        var list = new List<NetifTxResponse>();
        long deadline = Environment.TickCount64 + timeoutMs;
        while (list.Count < count)
        {
            if (Tx.TryConsumeResponse(out NetifTxResponse r) == RingRead.Item)
            {
                list.Add(r);
                continue;
            }
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException($"got {list.Count} of {count} tx responses");
            Thread.Sleep(2);
        }
        return [.. list];
    }

    /// <summary>True if no tx response shows up within <paramref name="ms"/> (for fatal cases, which answer nothing).</summary>
    public int CountTxResponsesWithin(int ms)
    {
        int n = 0;
        long deadline = Environment.TickCount64 + ms;
        while (Environment.TickCount64 < deadline)
        {
            while (Tx.TryConsumeResponse(out NetifTxResponse _) == RingRead.Item)
                n++;
            Thread.Sleep(5);
        }
        return n;
    }

    /// <summary>
    /// Posts <paramref name="count"/> rx buffers and kicks the backend; with
    /// <paramref name="kickOnlyIfAsked"/> only when req_event asks for it, as Linux netfront does.
    /// </summary>
    public void PostRx(int count, bool kickOnlyIfAsked = false)
    {
        for (int i = 0; i < count; i++)
        {
            uint index = Rx.ReqProdPvt;
            var (_, gref) = _rxPool[index % _rxPool.Length];
            Rx.PutRequest(new NetifRxRequest { Id = (ushort)(index % Rx.Size), Gref = gref });
        }
        if (Rx.PushRequestsAndCheckNotify() || !kickOnlyIfAsked)
            _dom.EventChannels.Notify(RxPort);
    }

    /// <summary>
    /// Reassembles the next frame. Each response is read from the page of the request in the same
    /// ring slot, as Linux netfront does (it ignores ids).
    /// </summary>
    public GuestFrame? Receive(int timeoutMs = 5000)
    {
        long deadline = Environment.TickCount64 + timeoutMs;
        var data = new List<byte>();
        ushort firstFlags = 0;
        NetifExtraInfo? gso = null, hash = null;
        int slots = 0;
        short error = 0;
        bool expectExtra = false, more = true;
        while (more || expectExtra)
        {
            uint index = Rx.RspCons;
            if (Rx.TryConsumeResponse(out NetifRxResponse rsp) != RingRead.Item)
            {
                if (Environment.TickCount64 > deadline)
                {
                    if (slots == 0) return null;
                    throw new TimeoutException("frame cut short");
                }
                Thread.Sleep(2);
                continue;
            }
            slots++;
            if (expectExtra)
            {
                var extra = Unsafe.As<NetifRxResponse, NetifExtraInfo>(ref rsp);
                if (extra.Type == NetifExtraType.Gso) gso = extra;
                if (extra.Type == NetifExtraType.Hash) hash = extra;
                expectExtra = (extra.Flags & NetifExtraFlags.More) != 0;
                continue;
            }
            if (slots == 1)
            {
                firstFlags = rsp.Flags;
                expectExtra = (rsp.Flags & NetRxFlags.ExtraInfo) != 0;
            }
            if (rsp.Status < 0)
                error = rsp.Status;
            else
                data.AddRange(_dom.Memory.Page(_rxPool[index % _rxPool.Length].Frame).Slice(rsp.Offset, rsp.Status).ToArray());
            more = (rsp.Flags & NetRxFlags.MoreData) != 0;
        }
        return new GuestFrame([.. data], firstFlags, gso, slots, error, hash);
    }
}
