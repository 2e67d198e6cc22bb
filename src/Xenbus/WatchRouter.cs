using System.Collections.Concurrent;
using System.Threading.Channels;
using XenBackends.XenStore;

namespace XenBackends.Xenbus;

/// <summary>
/// Shares one xenstore connection's watch events among many subscribers, each with its own token.
/// A subscription only remembers THAT its subtree changed, never a queue of events: watchers re-read
/// state anyway (watches may fire spuriously), and a guest rewriting a watched node in a loop can then
/// cost us nothing but re-reads, never memory (XSA-349).
/// The router is the only reader of its client's <see cref="XenStoreClient.WatchEvents"/>: two
/// readers would each get a share of the events, so create one router per client.
/// </summary>
public sealed class WatchRouter : IAsyncDisposable
{
    private readonly XenStoreClient _store;
    private readonly ConcurrentDictionary<string, WatchSubscription> _byToken = new();
    private readonly Task _loop;
    private long _nextToken;

    public WatchRouter(XenStoreClient store)
    {
        _store = store;
        _loop = Task.Run(RouteAsync);
    }

    public XenStoreClient Store => _store;

    /// <summary>Watches <paramref name="path"/> (and everything below it); the first signal comes at once.</summary>
    public async Task<WatchSubscription> SubscribeAsync(string path, CancellationToken cancellationToken = default)
    {
        string token = "xb" + Interlocked.Increment(ref _nextToken).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var subscription = new WatchSubscription(this, path, token);
        _byToken[token] = subscription;
        try
        {
            await _store.WatchAsync(path, token, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _byToken.TryRemove(token, out _);
            throw;
        }
        return subscription;
    }

    internal async ValueTask UnsubscribeAsync(WatchSubscription subscription)
    {
        if (!_byToken.TryRemove(subscription.Token, out _)) return;
        try
        {
            await _store.UnwatchAsync(subscription.Path, subscription.Token).ConfigureAwait(false);
        }
        catch (XenStoreException)
        {
            // The daemon is gone or already forgot the watch (e.g. after the path's domain died).
        }
    }

    private async Task RouteAsync()
    {
        Exception? fault = null;
        try
        {
            await foreach (var e in _store.WatchEvents.ReadAllAsync().ConfigureAwait(false))
                if (_byToken.TryGetValue(e.Token, out var subscription))
                    subscription.Signal();
        }
        catch (Exception ex)
        {
            fault = ex is ChannelClosedException { InnerException: { } inner } ? inner : ex;
        }
        fault ??= new XenStoreConnectionException("the xenstore connection closed");
        foreach (var s in _byToken.Values) s.Fail(fault);
    }

    /// <summary>Live subscriptions (tests: a watch nobody reads any more must be gone, here and in xenstored).</summary>
    internal int SubscriptionCount => _byToken.Count;

    /// <summary>The most waits any one live subscription has outstanding: one per loop waiting on it, more is a leak.</summary>
    internal int MostWaitsOnOneSubscription => _byToken.Values.Select(s => s.Waits).DefaultIfEmpty(0).Max();

    public async ValueTask DisposeAsync()
    {
        foreach (var s in _byToken.Values) await s.DisposeAsync().ConfigureAwait(false);
        // The loop ends when the client is disposed by its owner; we do not own the client.
        _ = _loop;
    }
}

/// <summary>One watch: a coalesced "something under <see cref="Path"/> changed" signal.</summary>
public sealed class WatchSubscription : IAsyncDisposable
{
    private readonly WatchRouter _router;
    private readonly Channel<bool> _changed = Channel.CreateBounded<bool>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private int _waits;

    internal WatchSubscription(WatchRouter router, string path, string token)
    {
        _router = router;
        Path = path;
        Token = token;
    }

    public string Path { get; }

    public string Token { get; }

    /// <summary>Waits outstanding on this subscription (tests: a wait must not outlive its race).</summary>
    internal int Waits => Volatile.Read(ref _waits);

    /// <summary>Completes once the path changed since the previous wait, consuming the change.</summary>
    public async ValueTask WaitAsync(CancellationToken cancellationToken = default)
    {
        while (!TryConsume())
            await WhenChangedAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Clears and returns the pending change flag. Consume before re-reading state, so a change during the read is not lost.</summary>
    public bool TryConsume() => _changed.Reader.TryRead(out _);

    /// <summary>
    /// Completes once any of <paramref name="subscriptions"/> changed since the previous wait, and
    /// consumes the changes of all of them: the caller then re-reads everything they watch, and a
    /// change during that read signals again. A new subscription starts with a change pending, so a
    /// loop that waits first reads once at start.
    /// </summary>
    public static async ValueTask WaitAnyAsync(IReadOnlyList<WatchSubscription> subscriptions, CancellationToken cancellationToken)
    {
        while (!ConsumeAll(subscriptions))
            await WhenAnyChangedAsync(subscriptions, cancellationToken).ConfigureAwait(false);
    }

    private static bool ConsumeAll(IReadOnlyList<WatchSubscription> subscriptions)
    {
        bool any = false;
        foreach (var s in subscriptions)
            any |= s.TryConsume();
        return any;
    }

    /// <summary>
    /// Completes when any of <paramref name="subscriptions"/> (or <paramref name="alsoWaitFor"/>,
    /// given the race's token) has news, consuming nothing: for a caller that consumes with
    /// <see cref="TryConsume"/> right before it re-reads (forgetting to makes every later wait return
    /// at once: a busy loop). The waits that lost are cancelled before this returns: left queued on a
    /// quiet subscription, one would pile up per change of a busy one, which a guest rewriting its own
    /// node turns into memory growth (XSA-349). Throws when the connection died.
    /// </summary>
    public static async Task WhenAnyChangedAsync(IReadOnlyList<WatchSubscription> subscriptions, CancellationToken cancellationToken, Func<CancellationToken, Task>? alsoWaitFor = null)
    {
        using var race = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var waits = new Task[subscriptions.Count + (alsoWaitFor is null ? 0 : 1)];
        for (int i = 0; i < subscriptions.Count; i++)
            waits[i] = subscriptions[i].WhenChangedAsync(race.Token);
        if (alsoWaitFor is not null)
            waits[^1] = alsoWaitFor(race.Token);
        Task first = await Task.WhenAny(waits).ConfigureAwait(false);
        race.Cancel();
        try
        {
            await Task.WhenAll(waits).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or XenStoreConnectionException)
        {
            // The losers, cancelled just now; the winner's own outcome is rethrown below.
        }
        await first.ConfigureAwait(false);
    }

    private async Task WhenChangedAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _waits);
        try
        {
            if (await _changed.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false)) return;
        }
        catch (ChannelClosedException e) when (e.InnerException is { } inner)
        {
            throw new XenStoreConnectionException($"watch on {Path} ended: {inner.Message}", inner);
        }
        finally
        {
            Interlocked.Decrement(ref _waits);
        }
        throw new XenStoreConnectionException($"watch on {Path} ended");
    }

    internal void Signal() => _changed.Writer.TryWrite(true);

    internal void Fail(Exception why) => _changed.Writer.TryComplete(why);

    public ValueTask DisposeAsync()
    {
        _changed.Writer.TryComplete();
        return _router.UnsubscribeAsync(this);
    }
}
