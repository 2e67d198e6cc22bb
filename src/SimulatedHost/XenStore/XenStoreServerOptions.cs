namespace XenBackends.SimulatedHost.XenStore;

/// <summary>
/// Quotas of the simulated daemon. Defaults follow C xenstored 4.17, which exempts dom0 from them (oxenstored
/// caps dom0's value size too; the client's own 2048-byte cap keeps callers inside both).
/// </summary>
public sealed class XenStoreServerOptions
{
    /// <summary>Nodes one unprivileged domain may own (quota_nb_entry_per_domain); ENOSPC beyond.</summary>
    public int MaxEntriesPerDomain { get; init; } = 1000;

    /// <summary>Largest value an unprivileged domain may store (quota_max_entry_size); ENOSPC beyond.</summary>
    public int MaxValueSize { get; init; } = 2048;

    /// <summary>Watches per unprivileged connection (quota_nb_watch_per_domain); E2BIG beyond.</summary>
    public int MaxWatchesPerConnection { get; init; } = 128;

    /// <summary>Open transactions per unprivileged connection (quota_max_transaction); ENOSPC beyond.</summary>
    public int MaxTransactionsPerConnection { get; init; } = 10;

    /// <summary>Permission entries an unprivileged domain may set on one node (quota_nb_perms_per_node); ENOSPC beyond.</summary>
    public int MaxPermissionsPerNode { get; init; } = 5;

    /// <summary>Apply the quotas to dom0 as well (oxenstored-like strictness).</summary>
    public bool QuotasApplyToDom0 { get; init; }
}
