namespace XenBackends.Rings;

/// <summary>
/// Raw, unvalidated access to a shared ring's header indexes and slot bytes. For hostile-peer
/// simulation and tests only: protocol code goes through <see cref="FrontRing"/>/<see cref="BackRing"/>.
/// </summary>
public sealed class RawSharedRing
{
    private readonly SringView _sring;

    internal RawSharedRing(SringView sring) => _sring = sring;

    public uint Size => _sring.Size;

    public uint ReqProd { get => _sring.Load(SharedRing.ReqProdOffset); set => _sring.Store(SharedRing.ReqProdOffset, value); }

    public uint ReqEvent { get => _sring.Load(SharedRing.ReqEventOffset); set => _sring.Store(SharedRing.ReqEventOffset, value); }

    public uint RspProd { get => _sring.Load(SharedRing.RspProdOffset); set => _sring.Store(SharedRing.RspProdOffset, value); }

    public uint RspEvent { get => _sring.Load(SharedRing.RspEventOffset); set => _sring.Store(SharedRing.RspEventOffset, value); }

    /// <summary>The 64-byte header (indexes, pvt, __pad).</summary>
    public Span<byte> RawHeader
    {
        get
        {
            _sring.ThrowIfReleased();
            return _sring.Bytes(0, SharedRing.HeaderSize);
        }
    }

    /// <summary>The whole slot (union of request and response) that <paramref name="index"/> maps to.</summary>
    public unsafe Span<byte> RawSlot(uint index)
    {
        _sring.ThrowIfReleased();
        return new Span<byte>(_sring.Slot(index), _sring.SlotSize);
    }

    /// <summary><c>SHARED_RING_INIT</c>, generalised to start every index at <paramref name="index"/>.</summary>
    public void InitializeShared(uint index)
    {
        RawHeader[SharedRing.PvtOffset..].Clear();
        ReqProd = index;
        RspProd = index;
        ReqEvent = index + 1;
        RspEvent = index + 1;
    }
}
