namespace XenBackends.XenStore;

public sealed class XenStoreClientOptions
{
    /// <summary>
    /// Largest value a write may carry. 2048 because oxenstored (Debian's default daemon) refuses bigger
    /// values even from dom0; raise it only for a daemon known to accept more.
    /// </summary>
    public int MaxValueSize { get; init; } = 2048;

    /// <summary>How long one request may wait for its reply; null waits until the connection dies.</summary>
    public TimeSpan? RequestTimeout { get; init; }

    /// <summary>How many times <see cref="XenStoreClient.RunTransactionAsync"/> runs a body that keeps hitting EAGAIN.</summary>
    public int MaxTransactionAttempts { get; init; } = 16;
}
