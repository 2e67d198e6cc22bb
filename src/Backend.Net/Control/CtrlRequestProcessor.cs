using System.Runtime.InteropServices;
using XenBackends.Native;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Control;

/// <summary>
/// Answers control-ring requests exactly as io/netif.h specifies them ("Control messages"), with
/// Linux netback's choices where the header leaves room (types 8-10, staging grants, are
/// NOT_SUPPORTED as upstream). Guest data (key, mapping) is grant-copied once into private memory
/// and validated there; the new settings are published only when everything checked out, so a bad
/// request never changes what the data path uses (XSA-270: bounds before the copy, every queue index
/// after it). A bad request is a status code, never fatal. Runs on the control thread only.
/// </summary>
public sealed class CtrlRequestProcessor
{
    private const int PageSize = 4096;

    private readonly ushort _domid;
    private readonly IGrantMapper _grants;
    private readonly int _numQueues;
    private readonly byte[] _staging = GC.AllocateArray<byte>(PageSize, pinned: true);
    private readonly nint _stagingAddress;
    private RxHashSettings _settings = RxHashSettings.Initial;

    public CtrlRequestProcessor(ushort domid, IGrantMapper grants, int numQueues)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numQueues, 1);
        _domid = domid;
        _grants = grants;
        _numQueues = numQueues;
        _stagingAddress = Marshal.UnsafeAddrOfPinnedArrayElement(_staging, 0);
    }

    /// <summary>What the data path uses now (read with one volatile load from any thread).</summary>
    public RxHashSettings Settings => Volatile.Read(ref _settings);

    /// <summary>Raised after every change, on the control thread.</summary>
    public event Action<RxHashSettings>? Changed;

    public XenNetifCtrlResponse Process(in XenNetifCtrlRequest request)
    {
        uint data = 0;
        uint status = request.Type switch
        {
            NetifCtrlType.SetHashAlgorithm => SetAlgorithm(request.Data[0]),
            NetifCtrlType.GetHashFlags => GetFlags(out data),
            NetifCtrlType.SetHashFlags => SetFlags(request.Data[0]),
            NetifCtrlType.SetHashKey => SetKey(request.Data[0], request.Data[1]),
            NetifCtrlType.GetHashMappingSize => GetMappingSize(out data),
            NetifCtrlType.SetHashMappingSize => SetMappingSize(request.Data[0]),
            NetifCtrlType.SetHashMapping => SetMapping(request.Data[0], request.Data[1], request.Data[2]),
            _ => NetifCtrlStatus.NotSupported,
        };
        return new XenNetifCtrlResponse { Id = request.Id, Type = request.Type, Status = status, Data = data };
    }

    private void Publish(RxHashSettings settings)
    {
        Volatile.Write(ref _settings, settings);
        Changed?.Invoke(settings);
    }

    private uint SetAlgorithm(uint algorithm)
    {
        if (algorithm is not (NetifCtrlHashAlgorithm.None or NetifCtrlHashAlgorithm.Toeplitz))
            return NetifCtrlStatus.InvalidParameter;
        Publish(_settings.WithAlgorithm((byte)algorithm));
        return NetifCtrlStatus.Success;
    }

    // netif.h: "A valid hash algorithm must be selected before this operation can succeed."
    private uint GetFlags(out uint data)
    {
        data = 0;
        if (_settings.Algorithm == NetifCtrlHashAlgorithm.None)
            return NetifCtrlStatus.NotSupported;
        data = RxHashSettings.SupportedTypes;
        return NetifCtrlStatus.Success;
    }

    private uint SetFlags(uint types)
    {
        if ((types & ~RxHashSettings.SupportedTypes) != 0 || _settings.Algorithm == NetifCtrlHashAlgorithm.None)
            return NetifCtrlStatus.InvalidParameter;
        Publish(_settings.WithTypes(types));
        return NetifCtrlStatus.Success;
    }

    private uint SetKey(uint gref, uint length)
    {
        // netif.h: a key larger than the backend supports is BUFFER_OVERFLOW (Linux says INVALID_PARAMETER).
        if (length > Toeplitz.MaxKeyLength)
            return NetifCtrlStatus.BufferOverflow;
        if (length > 0 && !CopyFromGuest(gref, (int)length))
            return NetifCtrlStatus.InvalidParameter;
        // Zero length clears the key ("the calculated hash will always be zero").
        Publish(_settings.WithKey(_staging.AsSpan(0, (int)length)));
        return NetifCtrlStatus.Success;
    }

    private static uint GetMappingSize(out uint data)
    {
        data = RxHashSettings.MaxMappingSize;
        return NetifCtrlStatus.Success;
    }

    private uint SetMappingSize(uint size)
    {
        if (size > RxHashSettings.MaxMappingSize)
            return NetifCtrlStatus.InvalidParameter;
        Publish(_settings.WithMappingSize((int)size));
        return NetifCtrlStatus.Success;
    }

    private uint SetMapping(uint gref, uint length, uint offset)
    {
        uint[] current = _settings.MappingArray;
        // XSA-270: the guest picks length and offset, so check them before touching any memory:
        // no wrap-around, inside the table, and within the one granted page the entries come from.
        if (length > PageSize / sizeof(uint))
            return NetifCtrlStatus.BufferOverflow;
        ulong end = (ulong)offset + length;
        if (end > (ulong)current.Length)
            return NetifCtrlStatus.InvalidParameter;
        if (length > 0 && !CopyFromGuest(gref, (int)length * sizeof(uint)))
            return NetifCtrlStatus.InvalidParameter;
        // Validate the private copy (never the guest's page, which it can change under us), then
        // build the new table aside and publish it whole.
        ReadOnlySpan<uint> entries = MemoryMarshal.Cast<byte, uint>(_staging.AsSpan(0, (int)length * sizeof(uint)));
        foreach (uint queue in entries)
        {
            if (queue >= (uint)_numQueues)
                return NetifCtrlStatus.InvalidParameter;
        }
        var next = (uint[])current.Clone();
        entries.CopyTo(next.AsSpan((int)offset));
        Publish(_settings.WithMapping(next));
        return NetifCtrlStatus.Success;
    }

    /// <summary>Grant-copies the first <paramref name="length"/> bytes of the granted page (data starts at the grant's beginning).</summary>
    private bool CopyFromGuest(uint gref, int length)
    {
        Span<GrantCopySegment> op = [GrantCopySegment.FromGuest(_domid, gref, 0, _stagingAddress, (ushort)length)];
        _grants.Copy(op);
        return op[0].Status == GrantStatus.Okay;
    }
}
