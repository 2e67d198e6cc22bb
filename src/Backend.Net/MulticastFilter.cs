namespace XenBackends.Backend.Net;

/// <summary>
/// The guest's multicast subscriptions (XEN_NETIF_EXTRA_TYPE_MCAST_ADD/DEL), at most 64 like
/// XEN_NETBK_MCAST_MAX so a guest cannot grow dom0 memory with them. Owned by one queue thread;
/// netfront sends the control requests on queue 0 only.
/// </summary>
internal sealed class MulticastFilter
{
    public const int MaxAddresses = 64;
    private readonly ulong[] _addresses = new ulong[MaxAddresses];
    private int _count;

    public int Count => _count;

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
        for (int i = 0; i < _count; i++)
            if (_addresses[i] == mac)
                return true;
        if (_count == MaxAddresses)
            return false;
        _addresses[_count++] = mac;
        return true;
    }

    public void Remove(ulong mac)
    {
        for (int i = 0; i < _count; i++)
        {
            if (_addresses[i] == mac)
            {
                _addresses[i] = _addresses[--_count];
                return;
            }
        }
    }

    public bool Contains(ulong mac)
    {
        for (int i = 0; i < _count; i++)
            if (_addresses[i] == mac)
                return true;
        return false;
    }
}
