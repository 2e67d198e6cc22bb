using System.Buffers.Binary;
using System.Globalization;
using XenBackends.Rings;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Hostile;

/// <summary>
/// A blkfront that follows no rules: it does the xenbus handshake with whatever values it is told to
/// write, then owns the shared ring through raw header and slot writes only (it keeps no
/// FrontRing state that a raw write could contradict). Requests are encoded by
/// <see cref="RawBlkifRequest"/> in the x86_64 layout; responses are read back without any of the
/// checks a real frontend makes, so tests see exactly what the backend wrote.
/// </summary>
public sealed class RawBlkfront : IAsyncDisposable
{
    private readonly SimulatedGuest _guest;
    private readonly SimulatedEventChannels _events;
    private readonly XenStoreClient _xs;
    private readonly GuestRegion _ringRegion;
    private uint _rspCons;

    private RawBlkfront(SimulatedGuest guest, XenStoreClient xs, string frontend, string backend, int order)
    {
        _guest = guest;
        _xs = xs;
        FrontendPath = frontend;
        BackendPath = backend;
        _events = guest.Host.OpenEventChannels(guest.Domid);
        int pages = 1 << order;
        uint first = guest.Domain.Memory.AllocateContiguous(pages);
        _ringRegion = new GuestRegion(guest.Domain.Memory, first, pages);
        RingRefs = new uint[pages];
        for (int i = 0; i < pages; i++)
            RingRefs[i] = guest.Domain.Grants.GrantAccess(SimulatedXenHost.Dom0, first + (uint)i, readOnly: false);
        Ring = FrontRing.Initialize(_ringRegion, BlkifProtocol.Layout(BlkifAbi.X86_64)).Raw;
        Port = _events.BindUnboundPort(SimulatedXenHost.Dom0);
    }

    public string FrontendPath { get; }

    public string BackendPath { get; }

    /// <summary>The shared ring, header and slots, writable at will.</summary>
    public RawSharedRing Ring { get; }

    public uint[] RingRefs { get; }

    /// <summary>The guest's end of the event channel (the value normally written as event-channel).</summary>
    public uint Port { get; }

    public GrantTable Grants => _guest.Domain.Grants;

    public GuestMemory Memory => _guest.Domain.Memory;

    /// <summary>Our private producer index: where the next <see cref="Put"/> goes.</summary>
    public uint ReqProdPvt { get; private set; }

    /// <summary>
    /// Sets up a ring of 2^<paramref name="order"/> pages and writes the handshake keys: the honest
    /// values unless <paramref name="overrides"/> replaces them (a null value deletes the key), then
    /// Initialised. Does not wait for the backend: see <see cref="WaitBackendStateAsync"/>.
    /// </summary>
    public static async Task<RawBlkfront> StartAsync(SimulatedGuest guest, int devid, int order = 0,
        IReadOnlyDictionary<string, string?>? overrides = null, CancellationToken cancellationToken = default)
    {
        string frontend = $"{guest.DomainPath}/device/vbd/{devid}";
        XenStoreClient xs = await guest.OpenXenStoreAsync(cancellationToken).ConfigureAwait(false);
        string backend = await xs.ReadStringAsync(frontend + "/backend", cancellationToken).ConfigureAwait(false);
        var front = new RawBlkfront(guest, xs, frontend, backend, order);
        var keys = new Dictionary<string, string?>
        {
            ["protocol"] = BlkifProtocol.X86_64,
            ["event-channel"] = Num(front.Port),
        };
        // Keys an earlier (hostile) handshake may have left behind are removed unless overridden.
        keys["multi-queue-num-queues"] = null;
        if (order == 0)
        {
            keys["ring-page-order"] = null;
            keys["ring-ref"] = Num(front.RingRefs[0]);
        }
        else
        {
            keys["ring-page-order"] = Num(order);
            for (int i = 0; i < front.RingRefs.Length; i++)
                keys["ring-ref" + Num(i)] = Num(front.RingRefs[i]);
        }
        foreach (var (k, v) in overrides ?? new Dictionary<string, string?>())
            keys[k] = v;
        foreach (var (k, v) in keys)
        {
            if (v is null)
            {
                try
                {
                    await xs.RemoveAsync(frontend + "/" + k, cancellationToken).ConfigureAwait(false);
                }
                catch (XenStoreException)
                {
                    // Already absent: that is what was asked for.
                }
            }
            else
                await xs.WriteAsync(frontend + "/" + k, v, cancellationToken).ConfigureAwait(false);
        }
        await front.WriteStateAsync(3, cancellationToken).ConfigureAwait(false);
        return front;
    }

    public Task WriteStateAsync(int state, CancellationToken cancellationToken = default) =>
        _xs.WriteAsync(FrontendPath + "/state", Num(state), cancellationToken);

    public Task WriteNodeAsync(string key, string value, CancellationToken cancellationToken = default) =>
        _xs.WriteAsync(FrontendPath + "/" + key, value, cancellationToken);

    public async Task<int?> ReadBackendStateAsync(CancellationToken cancellationToken = default)
    {
        string? s = await _xs.TryReadStringAsync(BackendPath + "/state", cancellationToken).ConfigureAwait(false);
        return int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : null;
    }

    /// <summary>Polls the backend's state until it is <paramref name="state"/>; throws when the bound runs out.</summary>
    public Task WaitBackendStateAsync(int state, TimeSpan timeout) =>
        Bounded.UntilAsync(async () => await ReadBackendStateAsync().ConfigureAwait(false) == state, timeout, $"{BackendPath} state {state}");

    /// <summary>A guest page granted to dom0 (read-only: dom0 may only read it, i.e. serve a WRITE from it).</summary>
    public (uint Gref, uint Frame) GrantPage(bool readOnly = false)
    {
        uint frame = Memory.AllocatePage();
        return (Grants.GrantAccess(SimulatedXenHost.Dom0, frame, readOnly), frame);
    }

    /// <summary>Writes <paramref name="request"/> into slot <see cref="ReqProdPvt"/> and advances it (not published).</summary>
    public void Put(in RawBlkifRequest request)
    {
        request.WriteTo(Ring.RawSlot(ReqProdPvt));
        ReqProdPvt++;
    }

    /// <summary>Publishes <see cref="ReqProdPvt"/> as req_prod and kicks the backend.</summary>
    public void Push()
    {
        Ring.ReqProd = ReqProdPvt;
        Kick();
    }

    /// <summary>Publishes an arbitrary producer index (far ahead, behind, wrapped) and kicks.</summary>
    public void PushRaw(uint reqProd)
    {
        Ring.ReqProd = reqProd;
        Kick();
    }

    public void Kick() => _events.Notify(Port);

    /// <summary>An event storm: <paramref name="count"/> notifications with nothing new on the ring (XSA-332).</summary>
    public void Storm(int count)
    {
        for (int i = 0; i < count; i++)
            _events.Notify(Port);
    }

    /// <summary>Responses published but not yet read by <see cref="TakeResponses"/>.</summary>
    public uint Unread => Ring.RspProd - _rspCons;

    /// <summary>Reads every published response from our consumer index on, unchecked, and moves past them.</summary>
    public List<RawBlkifResponse> TakeResponses()
    {
        var list = new List<RawBlkifResponse>();
        uint prod = Ring.RspProd;
        // A backend cannot answer more than a ring's worth past us; a broken one must not hang the test.
        if (prod - _rspCons > Ring.Size)
            throw new InvalidDataException($"rsp_prod {prod} is more than a ring ahead of {_rspCons}");
        for (; _rspCons != prod; _rspCons++)
            list.Add(RawBlkifResponse.Read(Ring.RawSlot(_rspCons)));
        return list;
    }

    /// <summary>Waits (bounded) until at least <paramref name="count"/> responses are unread, then takes them all.</summary>
    public async Task<List<RawBlkifResponse>> WaitResponsesAsync(int count, TimeSpan timeout)
    {
        await Bounded.UntilAsync(() => Task.FromResult(Unread >= (uint)count), timeout, $"{count} responses").ConfigureAwait(false);
        return TakeResponses();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _events.Unbind(Port);
        }
        catch (Exception)
        {
            // The domain may already be gone.
        }
        _events.Dispose();
        await _xs.DisposeAsync().ConfigureAwait(false);
    }

    private static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A blkif response as it sits in the slot (x86_64 and x86_32 share these offsets).</summary>
public readonly record struct RawBlkifResponse(ulong Id, byte Operation, short Status, byte Pad9, ushort Pad12, ushort Pad14)
{
    public static RawBlkifResponse Read(ReadOnlySpan<byte> slot) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(slot),
        slot[8],
        BinaryPrimitives.ReadInt16LittleEndian(slot[10..]),
        slot[9],
        BinaryPrimitives.ReadUInt16LittleEndian(slot[12..]),
        BinaryPrimitives.ReadUInt16LittleEndian(slot[14..]));
}
