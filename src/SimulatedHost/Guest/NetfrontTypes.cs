namespace XenBackends.SimulatedHost.Guest;

/// <summary>The module parameters of Linux xen-netfront that change what reaches a backend.</summary>
public sealed class NetfrontOptions
{
    /// <summary><c>max_queues</c> (Linux: online CPUs, at most 8).</summary>
    public uint MaxQueues { get; init; } = 2;

    /// <summary>Receive buffers kept posted per queue (Linux keeps the ring full: 256).</summary>
    public int RxBuffers { get; init; } = 256;
}

/// <summary>How one frame is offered to the backend.</summary>
public sealed record NetfrontSendOptions
{
    /// <summary>NETTXF_csum_blank | NETTXF_data_validated: the L4 checksum holds only the pseudo-header sum.</summary>
    public bool CsumBlank { get; init; }

    /// <summary>NETTXF_data_validated alone.</summary>
    public bool DataValidated { get; init; }

    /// <summary>A GSO extra (XEN_NETIF_GSO_TYPE_TCPV4/6 and the MSS) after the first slot.</summary>
    public (byte Type, ushort Size)? Gso { get; init; }

    /// <summary>Largest number of bytes per slot (at most a page); smaller values force multi-slot frames.</summary>
    public int SlotSize { get; init; } = 4096;

    /// <summary>Which queue to send on; round-robin when null.</summary>
    public int? Queue { get; init; }
}

/// <summary>A frame the backend delivered, with its NETRXF flags and any GSO extra.</summary>
public sealed record ReceivedFrame(byte[] Data, ushort Flags, int Slots, (byte Type, ushort Size)? Gso, int Queue)
{
    /// <summary>The connection whose rx ring delivered it (see <see cref="SimulatedNetfront.Generation"/>).</summary>
    public int Generation { get; init; }
}

/// <summary>Packet counters, as netfront's per-queue stats summed.</summary>
/// <remarks>
/// Like the netdev's stats in Linux (kept in netfront_info, not in the queues), they survive the
/// queues being re-created on resume or reconnect.
/// </remarks>
public readonly record struct NetfrontCounters(long TxPackets, long TxBytes, long TxErrors, long RxPackets, long RxBytes, long RxErrors)
{
    /// <summary>Tx frames in flight at a suspend, freed unanswered on resume as xennet_release_tx_bufs does.</summary>
    public long TxDropped { get; init; }

    public static NetfrontCounters operator +(NetfrontCounters a, NetfrontCounters b) =>
        new(a.TxPackets + b.TxPackets, a.TxBytes + b.TxBytes, a.TxErrors + b.TxErrors, a.RxPackets + b.RxPackets, a.RxBytes + b.RxBytes, a.RxErrors + b.RxErrors)
        { TxDropped = a.TxDropped + b.TxDropped };
}
