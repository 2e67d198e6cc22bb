namespace XenBackends.Backend.Net;

/// <summary>What the frontend said it can receive (its feature-* keys), fixed for one connection.</summary>
public sealed record NetFrontendFeatures
{
    /// <summary>feature-sg: multi-slot rx packets.</summary>
    public bool Sg { get; init; }
    public bool GsoTcpV4 { get; init; }
    public bool GsoTcpV6 { get; init; }
    /// <summary>Not feature-no-csum-offload: partial IPv4 checksums may be passed on (NETRXF_csum_blank).</summary>
    public bool Ipv4CsumOffload { get; init; } = true;
    public bool Ipv6CsumOffload { get; init; }
    /// <summary>feature-rx-notify: the frontend kicks when it posts rx buffers.</summary>
    public bool RxNotify { get; init; }
    /// <summary>request-multicast-control: drop multicast the guest did not subscribe to.</summary>
    public bool MulticastControl { get; init; }
}
