namespace XenBackends.Backend.Net;

/// <summary>
/// The guest's multicast subscriptions (XEN_NETIF_EXTRA_TYPE_MCAST_ADD/DEL), at most 64 like
/// XEN_NETBK_MCAST_MAX so a guest cannot grow dom0 memory with them, and whether filtering is on
/// (request-multicast-control, which the frontend may flip at any time: feature-dynamic-multicast-control).
/// Netfront sends the control requests on queue 0, but every queue's rx path reads the table, so
/// changes are made under a lock and published by a volatile count; a reader racing a removal may
/// see the old table for one frame, as an RCU reader in netback may.
/// </summary>
internal sealed class MulticastFilter
{
    public const int MaxAddresses = 64;
    private readonly ulong[] _addresses = new ulong[MaxAddresses];
    private readonly Lock _lock = new();
    private int _count;
    private volatile bool _enabled;

    public MulticastFilter(bool enabled) => _enabled = enabled;

    public int Count => Volatile.Read(ref _count);

    /// <summary>Drop multicast the guest did not subscribe to (broadcast always passes).</summary>
    public bool Enabled
    {
        get => _enabled;
        set => _enabled = value;
    }

    public static ulong Pack(ReadOnlySpan<byte> mac)
    {
        ulong v = 0;
        for (int i = 0; i < 6; i++)
            v = (v << 8) | mac[i];
        return v;
    }

    /// <summary>False when the table is full (the guest then gets NETIF_RSP_ERROR).</summary>
    public bool Add(ulong mac)
    {
        lock (_lock)
        {
            if (Contains(mac))
                return true;
            if (_count == MaxAddresses)
                return false;
            _addresses[_count] = mac;
            Volatile.Write(ref _count, _count + 1);
            return true;
        }
    }

    public void Remove(ulong mac)
    {
        lock (_lock)
        {
            for (int i = 0; i < _count; i++)
            {
                if (_addresses[i] == mac)
                {
                    _addresses[i] = _addresses[_count - 1];
                    Volatile.Write(ref _count, _count - 1);
                    return;
                }
            }
        }
    }

    public bool Contains(ulong mac)
    {
        int count = Volatile.Read(ref _count);
        for (int i = 0; i < count; i++)
            if (_addresses[i] == mac)
                return true;
        return false;
    }
}
