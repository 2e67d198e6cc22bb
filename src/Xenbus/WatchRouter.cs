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

    internal WatchSubscription(WatchRouter router, string path, string token)
    {
        _router = router;
        Path = path;
        Token = token;
    }

    public string Path { get; }

    public string Token { get; }

    /// <summary>Completes once the path changed since the previous wait, consuming the change.</summary>
    public async ValueTask WaitAsync(CancellationToken cancellationToken = default)
    {
        while (!TryConsume())
            await WhenChangedAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Clears and returns the pending change flag. Consume before re-reading state, so a change during the read is not lost.</summary>
    public bool TryConsume() => _changed.Reader.TryRead(out _);

    /// <summary>
    /// Completes when a change is pending, without consuming it, so waits on several subscriptions can
    /// be raced with <see cref="Task.WhenAny(Task[])"/> and the losers leave nothing behind. Throws when
    /// the connection died.
    /// </summary>
    public async Task WhenChangedAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (await _changed.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false)) return;
        }
        catch (ChannelClosedException e) when (e.InnerException is { } inner)
        {
            throw new XenStoreConnectionException($"watch on {Path} ended: {inner.Message}", inner);
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
