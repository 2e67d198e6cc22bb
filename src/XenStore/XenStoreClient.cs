using System.Globalization;
using System.Threading.Channels;

namespace XenBackends.XenStore;

/// <summary>
/// A managed xenstore client. Requests are pipelined (many in flight, matched by req_id); watch events
/// arrive on <see cref="WatchEvents"/>. After the daemon dies or breaks the protocol every call throws
/// <see cref="XenStoreConnectionException"/>.
/// </summary>
public sealed class XenStoreClient : XenStoreOperations, IAsyncDisposable
{
    private readonly XenStoreTransport _transport;

    private XenStoreClient(XenStoreTransport transport, XenStoreClientOptions options)
        : base(new XenStoreConnection(transport.Stream, transport.Description, options.RequestTimeout), options) =>
        _transport = transport;

    public override uint TransactionId => 0;

    /// <summary>Takes ownership of the transport (socket, device, or any stream speaking xsd_sockmsg).</summary>
    public static XenStoreClient Create(XenStoreTransport transport, XenStoreClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(transport);
        options ??= new XenStoreClientOptions();
        if (options.MaxValueSize is < 0 or > XsdSockmsg.XENSTORE_PAYLOAD_MAX)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxValueSize, $"MaxValueSize must be 0..{XsdSockmsg.XENSTORE_PAYLOAD_MAX}");
        if (options.MaxTransactionAttempts < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxTransactionAttempts, "MaxTransactionAttempts must be at least 1");
        return new XenStoreClient(transport, options);
    }

    /// <summary>Connects the way libxenstore does: $XENSTORED_PATH / default socket, else /dev/xen/xenbus.</summary>
    public static async Task<XenStoreClient> OpenAsync(XenStoreClientOptions? options = null, CancellationToken cancellationToken = default) =>
        Create(await XenStoreTransport.OpenDefaultAsync(cancellationToken).ConfigureAwait(false), options);

    public static async Task<XenStoreClient> OpenSocketAsync(string path, XenStoreClientOptions? options = null, CancellationToken cancellationToken = default) =>
        Create(await XenStoreTransport.OpenSocketAsync(path, cancellationToken).ConfigureAwait(false), options);

    /// <summary>
    /// Every XS_WATCH_EVENT of this connection, in arrival order, buffered without bound so none is lost.
    /// When the connection dies reading throws a ChannelClosedException whose InnerException says why.
    /// </summary>
    public ChannelReader<XenStoreWatchEvent> WatchEvents => Connection.Events;

    /// <summary>Registers a watch; the daemon fires it once right away with the watched path.</summary>
    public Task WatchAsync(string path, string token, CancellationToken cancellationToken = default) =>
        WatchRequestAsync(XsdSockmsgType.XS_WATCH, path, token, cancellationToken);

    public Task UnwatchAsync(string path, string token, CancellationToken cancellationToken = default) =>
        WatchRequestAsync(XsdSockmsgType.XS_UNWATCH, path, token, cancellationToken);

    /// <summary>Drops every watch and transaction this connection holds in the daemon.</summary>
    public async Task ResetWatchesAsync(CancellationToken cancellationToken = default) =>
        await Connection.RequestAsync(XsdSockmsgType.XS_RESET_WATCHES, 0, XsPayload.Strings(""), "(reset watches)", cancellationToken).ConfigureAwait(false);

    /// <summary>"/local/domain/&lt;domid&gt;" as the daemon reports it.</summary>
    public async Task<string> GetDomainPathAsync(uint domId, CancellationToken cancellationToken = default)
    {
        var reply = await Connection.RequestAsync(XsdSockmsgType.XS_GET_DOMAIN_PATH, 0, DomIdPayload(domId), $"(domain {domId})", cancellationToken).ConfigureAwait(false);
        return XsPayload.SingleString(reply);
    }

    public async Task<bool> IsDomainIntroducedAsync(uint domId, CancellationToken cancellationToken = default)
    {
        var reply = await Connection.RequestAsync(XsdSockmsgType.XS_IS_DOMAIN_INTRODUCED, 0, DomIdPayload(domId), $"(domain {domId})", cancellationToken).ConfigureAwait(false);
        return XsPayload.SingleString(reply) switch
        {
            "T" => true,
            "F" => false,
            var other => throw new XenStoreException($"xenstore answered XS_IS_DOMAIN_INTRODUCED with '{Shorten(other)}', expected T or F"),
        };
    }

    public async Task<XenStoreTransaction> StartTransactionAsync(CancellationToken cancellationToken = default)
    {
        var reply = await Connection.RequestAsync(XsdSockmsgType.XS_TRANSACTION_START, 0, XsPayload.Strings(""), "(transaction start)", cancellationToken).ConfigureAwait(false);
        var text = XsPayload.SingleString(reply);
        if (!uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || id == 0)
            throw new XenStoreException($"xenstore answered XS_TRANSACTION_START with '{Shorten(text)}', not a transaction id");
        return new XenStoreTransaction(Connection, Options, id);
    }

    public Task RunTransactionAsync(Func<XenStoreTransaction, Task> body, CancellationToken cancellationToken = default) =>
        RunTransactionAsync<bool>(async tx => { await body(tx).ConfigureAwait(false); return true; }, cancellationToken);

    /// <summary>
    /// Runs <paramref name="body"/> in a transaction and commits; on EAGAIN (a conflicting writer) runs it
    /// again from scratch, at most <see cref="XenStoreClientOptions.MaxTransactionAttempts"/> times, then throws
    /// <see cref="XenStoreTransactionConflictException"/>. Any other failure aborts the transaction and propagates.
    /// </summary>
    public async Task<T> RunTransactionAsync<T>(Func<XenStoreTransaction, Task<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        for (var attempt = 1; ; attempt++)
        {
            var tx = await StartTransactionAsync(cancellationToken).ConfigureAwait(false);
            T result;
            try
            {
                result = await body(tx).ConfigureAwait(false);
                if (!tx.Ended) await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                return result;
            }
            catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.EAGAIN)
            {
                await AbortQuietlyAsync(tx).ConfigureAwait(false);
                if (attempt >= Options.MaxTransactionAttempts) throw new XenStoreTransactionConflictException(attempt);
            }
            catch
            {
                await AbortQuietlyAsync(tx).ConfigureAwait(false);
                throw;
            }
        }
    }

    private static async Task AbortQuietlyAsync(XenStoreTransaction tx)
    {
        if (tx.Ended) return;
        try
        {
            await tx.AbortAsync().ConfigureAwait(false);
        }
        catch (XenStoreException)
        {
            // The original failure matters more than a failed abort; the daemon drops the transaction with the connection anyway.
        }
    }

    private async Task WatchRequestAsync(XsdSockmsgType type, string path, string token, CancellationToken cancellationToken)
    {
        XsPath.Validate(path, forWatch: true);
        ArgumentNullException.ThrowIfNull(token);
        if (token.Contains('\0')) throw new ArgumentException("a watch token cannot contain NUL", nameof(token));
        var payload = XsPayload.Strings(path, token);
        if (payload.Length > XsdSockmsg.XENSTORE_PAYLOAD_MAX)
            throw new ArgumentException($"watch path plus token is {payload.Length} bytes, over XENSTORE_PAYLOAD_MAX", nameof(token));
        await Connection.RequestAsync(type, 0, payload, path, cancellationToken).ConfigureAwait(false);
    }

    private static byte[] DomIdPayload(uint domId) => XsPayload.Strings(domId.ToString(CultureInfo.InvariantCulture));

    public async ValueTask DisposeAsync()
    {
        await Connection.DisposeAsync().ConfigureAwait(false);
        await _transport.DisposeAsync().ConfigureAwait(false);
    }
}
