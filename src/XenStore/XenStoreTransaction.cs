namespace XenBackends.XenStore;

/// <summary>
/// An open transaction: its reads see the snapshot taken at start plus its own writes, and nothing is
/// visible (no watch fires) until <see cref="CommitAsync"/>. Prefer <see cref="XenStoreClient.RunTransactionAsync"/>,
/// which retries on EAGAIN.
/// </summary>
public sealed class XenStoreTransaction : XenStoreOperations
{
    private bool _ended;

    internal XenStoreTransaction(XenStoreConnection connection, XenStoreClientOptions options, uint id) : base(connection, options) =>
        TransactionId = id;

    public override uint TransactionId { get; }

    /// <summary>Throws <see cref="XenStoreErrorException"/> with ErrnoName EAGAIN when another writer conflicted: redo the whole body.</summary>
    public Task CommitAsync(CancellationToken cancellationToken = default) => EndAsync(commit: true, cancellationToken);

    public Task AbortAsync(CancellationToken cancellationToken = default) => EndAsync(commit: false, cancellationToken);

    private async Task EndAsync(bool commit, CancellationToken cancellationToken)
    {
        if (_ended) throw new InvalidOperationException($"xenstore transaction {TransactionId} has already ended");
        _ended = true;
        await Connection.RequestAsync(XsdSockmsgType.XS_TRANSACTION_END, TransactionId, XsPayload.Strings(commit ? "T" : "F"),
            $"(transaction {TransactionId})", cancellationToken).ConfigureAwait(false);
    }

    internal bool Ended => _ended;
}
