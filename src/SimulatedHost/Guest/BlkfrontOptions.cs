using XenBackends.Rings.Blkif;

namespace XenBackends.SimulatedHost.Guest;

/// <summary>The module parameters of Linux xen-blkfront, with its defaults unless noted.</summary>
public sealed class BlkfrontOptions
{
    /// <summary><c>max_ring_page_order</c> (Linux default 0: one page unless raised).</summary>
    public uint MaxRingPageOrder { get; init; }

    /// <summary><c>max_queues</c> (Linux default 4).</summary>
    public uint MaxQueues { get; init; } = 4;

    /// <summary><c>max_indirect_segments</c> (Linux default 32).</summary>
    public uint MaxIndirectSegments { get; init; } = 32;

    /// <summary><c>feature_persistent</c> (Linux default on): written as the frontend's feature-persistent.</summary>
    public bool FeaturePersistent { get; init; } = true;

    /// <summary>Which ring layout to use and announce in <c>protocol</c>; a 32-bit guest would say x86_32-abi.</summary>
    public BlkifAbi Abi { get; init; } = BlkifAbi.X86_64;
}
