using System.Globalization;
using System.Runtime.CompilerServices;
using XenBackends.Rings;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Hostile;

/// <summary>
/// A netfront that follows no rules: one queue (tx and rx ring on granted pages, one or two event
/// channels), optionally a control ring, and a pool of granted data pages. It does the xenbus
/// handshake, then puts whatever tx requests, extras and producer indexes a test asks for and reads
/// the backend's responses back unchecked. It never posts rx buffers unless asked: a guest that
/// starves its rx ring is one of the attacks (XSA-392).
/// </summary>
public sealed class RawNetfront : IAsyncDisposable
{
    // Enough for a full ring of slots each on its own half page (the tx fuzz stages without reuse per batch).
    public const int DataPages = 192;
    private static readonly RingSlotLayout TxLayout = RingSlotLayout.Of<NetifTxRequest, NetifTxResponse>();
    private static readonly RingSlotLayout RxLayout = RingSlotLayout.Of<NetifRxRequest, NetifRxResponse>();

    private readonly SimulatedGuest _guest;
    private readonly SimulatedEventChannels _events;
    private readonly XenStoreClient _xs;
    private readonly (uint Gref, uint Frame)[] _rxBuffers;
    private readonly List<(uint Gref, uint Frame)> _granted = [];
    private ushort _ctrlId = 1;

    private RawNetfront(SimulatedGuest guest, XenStoreClient xs, string frontend, string backend, bool split, bool ctrl, uint txStart)
    {
        _guest = guest;
        _xs = xs;
        FrontendPath = frontend;
        BackendPath = backend;
        _events = guest.Host.OpenEventChannels(guest.Domid);
        Tx = FrontRing.Initialize(Region(out uint txRef), TxLayout, txStart);
        TxRingRef = txRef;
        Rx = FrontRing.Initialize(Region(out uint rxRef), RxLayout);
        RxRingRef = rxRef;
        TxPort = _events.BindUnboundPort(SimulatedXenHost.Dom0);
        RxPort = split ? _events.BindUnboundPort(SimulatedXenHost.Dom0) : TxPort;
        if (ctrl)
        {
            Ctrl = FrontRing.Initialize(Region(out uint ctrlRef), NetifRings.Ctrl);
            CtrlRingRef = ctrlRef;
            CtrlPort = _events.BindUnboundPort(SimulatedXenHost.Dom0);
        }
        Data = [.. Enumerable.Range(0, DataPages).Select(_ => GrantPage(readOnly: true))];
        _rxBuffers = [.. Enumerable.Range(0, (int)Rx.Size).Select(_ => GrantPage(readOnly: false))];
    }

    public string FrontendPath { get; }
    public string BackendPath { get; }
    public FrontRing Tx { get; }
    public FrontRing Rx { get; }
    public FrontRing? Ctrl { get; }
    public uint TxRingRef { get; }
    public uint RxRingRef { get; }
    public uint CtrlRingRef { get; }
    public uint TxPort { get; }
    public uint RxPort { get; }
    public uint CtrlPort { get; }

    /// <summary>Read-only granted pages for tx data (gref, frame): the guest may rewrite them at will.</summary>
    public (uint Gref, uint Frame)[] Data { get; }

    public GuestMemory Memory => _guest.Domain.Memory;

    public GrantTable Grants => _guest.Domain.Grants;

    /// <summary>
    /// Sets up the rings and writes the handshake keys Linux netfront writes (feature overrides
    /// applied, null deletes), then Connected, as netfront does without waiting for the backend.
    /// </summary>
    public static async Task<RawNetfront> StartAsync(SimulatedGuest guest, int devid, bool split = false, bool ctrl = false,
        IReadOnlyDictionary<string, string?>? overrides = null, CancellationToken cancellationToken = default, uint txStart = 0)
    {
        string frontend = $"{guest.DomainPath}/device/vif/{devid}";
        XenStoreClient xs = await guest.OpenXenStoreAsync(cancellationToken).ConfigureAwait(false);
        string backend = await xs.ReadStringAsync(frontend + "/backend", cancellationToken).ConfigureAwait(false);
        var front = new RawNetfront(guest, xs, frontend, backend, split, ctrl, txStart);
        var keys = new Dictionary<string, string?>
        {
            ["tx-ring-ref"] = Num(front.TxRingRef),
            ["rx-ring-ref"] = Num(front.RxRingRef),
            ["request-rx-copy"] = "1",
            ["feature-rx-notify"] = "1",
            ["feature-sg"] = "1",
            ["feature-gso-tcpv4"] = "1",
            ["feature-gso-tcpv6"] = "1",
            ["feature-ipv6-csum-offload"] = "1",
        };
        if (split)
        {
            keys["event-channel-tx"] = Num(front.TxPort);
            keys["event-channel-rx"] = Num(front.RxPort);
        }
        else
        {
            keys["event-channel"] = Num(front.TxPort);
        }
        if (ctrl)
        {
            keys["ctrl-ring-ref"] = Num(front.CtrlRingRef);
            keys["event-channel-ctrl"] = Num(front.CtrlPort);
        }
        foreach (var (k, v) in overrides ?? new Dictionary<string, string?>())
            keys[k] = v;
        foreach (var (k, v) in keys)
        {
            if (v is not null)
                await xs.WriteAsync(frontend + "/" + k, v, cancellationToken).ConfigureAwait(false);
        }
        await xs.WriteAsync(frontend + "/state", "4", cancellationToken).ConfigureAwait(false);
        return front;
    }

    public Task WriteStateAsync(int state, CancellationToken cancellationToken = default) =>
        _xs.WriteAsync(FrontendPath + "/state", Num(state), cancellationToken);

    public async Task<int?> ReadBackendStateAsync(CancellationToken cancellationToken = default)
    {
        string? s = await _xs.TryReadStringAsync(BackendPath + "/state", cancellationToken).ConfigureAwait(false);
        return int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : null;
    }

    public Task WaitBackendStateAsync(int state, TimeSpan timeout) =>
        Bounded.UntilAsync(async () => await ReadBackendStateAsync().ConfigureAwait(false) == state, timeout, $"{BackendPath} state {state}");

    public (uint Gref, uint Frame) GrantPage(bool readOnly)
    {
        uint frame = Memory.AllocatePage();
        var page = (Grants.GrantAccess(SimulatedXenHost.Dom0, frame, readOnly), frame);
        _granted.Add(page);
        return page;
    }

    /// <summary>Copies <paramref name="bytes"/> into data page <paramref name="page"/> at <paramref name="offset"/>; returns its gref.</summary>
    public uint Stage(int page, ReadOnlySpan<byte> bytes, int offset = 0)
    {
        var (gref, frame) = Data[page % Data.Length];
        bytes.CopyTo(Memory.Page(frame)[offset..]);
        return gref;
    }

    public void PutTx(uint gref, ushort offset, ushort flags, ushort id, ushort size) =>
        Tx.PutRequest(new NetifTxRequest { Gref = gref, Offset = offset, Flags = flags, Id = id, Size = size });

    public void PutExtra(in NetifExtraInfo extra) => Tx.PutRequest(extra);

    /// <summary>The live bytes of tx slot <paramref name="index"/>, for rewriting while the backend reads (XSA-155).</summary>
    public Span<byte> TxSlot(uint index) => Tx.Raw.RawSlot(index);

    /// <summary>Publishes the private producer index and kicks.</summary>
    public void PushTx()
    {
        Tx.Raw.ReqProd = Tx.ReqProdPvt;
        KickTx();
    }

    public void KickTx() => _events.Notify(TxPort);

    public void KickRx() => _events.Notify(RxPort);

    /// <summary>An event storm on <paramref name="port"/> with nothing new on any ring (XSA-332).</summary>
    public void Storm(uint port, int count)
    {
        for (int i = 0; i < count; i++)
            _events.Notify(port);
    }

    /// <summary>Tx responses published and not yet taken.</summary>
    public uint TxUnread => Tx.Raw.RspProd - Tx.RspCons;

    /// <summary>Every published tx response from our consumer index on.</summary>
    public List<NetifTxResponse> TakeTxResponses()
    {
        var list = new List<NetifTxResponse>();
        // A backend cannot answer more than a ring's worth past us; a broken one must not hang the test.
        if (TxUnread > Tx.Size)
            throw new InvalidDataException($"tx rsp_prod {Tx.Raw.RspProd} is more than a ring ahead of {Tx.RspCons}");
        while (Tx.TryConsumeResponse(out NetifTxResponse r) == RingRead.Item)
            list.Add(r);
        return list;
    }

    public async Task<List<NetifTxResponse>> WaitTxResponsesAsync(int count, TimeSpan timeout)
    {
        await Bounded.UntilAsync(() => TxUnread >= (uint)count, timeout, $"{count} tx responses (have {TxUnread})").ConfigureAwait(false);
        return TakeTxResponses();
    }

    /// <summary>Posts <paramref name="count"/> rx buffers (ids = ring index) and kicks.</summary>
    public void PostRx(int count)
    {
        for (int i = 0; i < count; i++)
        {
            uint index = Rx.ReqProdPvt;
            Rx.PutRequest(new NetifRxRequest { Id = (ushort)(index % Rx.Size), Gref = _rxBuffers[index % Rx.Size].Gref });
        }
        Rx.PushRequestsAndCheckNotify();
        KickRx();
    }

    /// <summary>Rx buffers posted and not yet answered.</summary>
    public uint RxOutstanding => Rx.ReqProdPvt - Rx.Raw.RspProd;

    /// <summary>
    /// Takes every published rx response and reassembles frames (data read from the buffer of the
    /// same ring slot, as netfront does); extras are skipped. Frames with an error slot are counted, not returned.
    /// </summary>
    public List<byte[]> TakeRxFrames(out int errors)
    {
        var frames = new List<byte[]>();
        errors = 0;
        var current = new List<byte>();
        bool extra = false, bad = false;
        while (true)
        {
            uint index = Rx.RspCons;
            if (Rx.TryConsumeResponse(out NetifRxResponse rsp) != RingRead.Item)
                break;
            if (extra)
            {
                extra = (Unsafe.As<NetifRxResponse, NetifExtraInfo>(ref rsp).Flags & NetifExtraFlags.More) != 0;
                continue;
            }
            if (current.Count == 0 && (rsp.Flags & NetRxFlags.ExtraInfo) != 0)
                extra = true;
            if (rsp.Status < 0)
                bad = true;
            else
                current.AddRange(Memory.Page(_rxBuffers[index % Rx.Size].Frame).Slice(rsp.Offset, rsp.Status).ToArray());
            if ((rsp.Flags & NetRxFlags.MoreData) == 0)
            {
                if (bad) errors++;
                else frames.Add([.. current]);
                current.Clear();
                bad = false;
            }
        }
        return frames;
    }

    /// <summary>A read-only page holding <paramref name="bytes"/>, for control-ring tables and keys.</summary>
    public uint GrantBytes(ReadOnlySpan<byte> bytes)
    {
        var (gref, frame) = GrantPage(readOnly: true);
        Memory.Page(frame).Clear();
        bytes.CopyTo(Memory.Page(frame));
        return gref;
    }

    /// <summary>One control request, answered within <paramref name="timeout"/> (bounded).</summary>
    public async Task<XenNetifCtrlResponse> CtrlAsync(ushort type, uint d0, uint d1, uint d2, TimeSpan timeout)
    {
        FrontRing ring = Ctrl ?? throw new InvalidOperationException("no control ring");
        var request = new XenNetifCtrlRequest { Id = _ctrlId++, Type = type };
        request.Data[0] = d0;
        request.Data[1] = d1;
        request.Data[2] = d2;
        ring.PutRequest(request);
        ring.PushRequestsAndCheckNotify();
        _events.Notify(CtrlPort);
        XenNetifCtrlResponse response = default;
        await Bounded.UntilAsync(() => ring.TryConsumeResponse(out response) == RingRead.Item, timeout, $"control response to type {type}").ConfigureAwait(false);
        return response;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (uint port in new[] { TxPort, RxPort, CtrlPort }.Distinct().Where(p => p != 0))
        {
            try
            {
                _events.Unbind(port);
            }
            catch (Exception)
            {
                // The domain may already be gone.
            }
        }
        _events.Dispose();
        // A test reconnecting many times must not run the guest out of grant entries or pages. Only
        // call this once the backend let go of the rings (after Closed), as a real frontend would.
        foreach (var (gref, frame) in _granted)
        {
            if (Grants.EndAccess(gref))
                Memory.FreePage(frame);
        }
        _granted.Clear();
        await _xs.DisposeAsync().ConfigureAwait(false);
    }

    private GuestRegion Region(out uint gref)
    {
        uint frame = _guest.Domain.Memory.AllocatePage();
        gref = _guest.Domain.Grants.GrantAccess(SimulatedXenHost.Dom0, frame, readOnly: false);
        _granted.Add((gref, frame));
        return new GuestRegion(_guest.Domain.Memory, frame, 1);
    }

    private static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);
}
