using XenBackends.Xenbus;
using XenBackends.XenStore;

namespace XenBackends.Service.Worker;

/// <summary>
/// The xenstore half of one device's status line: backend state, frontend state and error node,
/// re-read only after a watch says one of them may have changed. The report goes out every second;
/// reading the four nodes for it each time cost xenstored four requests a second per device, which a
/// dom0 with many guests pays for doing nothing.
/// </summary>
internal sealed class DeviceStateReader : IAsyncDisposable
{
    private readonly WatchRouter _router;
    private readonly XenStoreClient _store;
    private readonly DevicePath _path;
    private readonly List<WatchSubscription> _watches = [];
    // The frontend's state node moves when the toolstack rewrites the backend's frontend key; only
    // the current one is watched, or every rewrite would leave a live watch behind in xenstored.
    private WatchSubscription? _frontendWatch;
    // Nothing read yet.
    private bool _stale = true;

    private DeviceStateReader(WatchRouter router, DevicePath path)
    {
        _router = router;
        _store = router.Store;
        _path = path;
    }

    public string? BackendState { get; private set; }
    public string? FrontendState { get; private set; }
    public string? Error { get; private set; }

    private string ErrorPath => $"/local/domain/0/error/{_path.NodeName}/error";

    public static async Task<DeviceStateReader> OpenAsync(WatchRouter watches, DevicePath path, CancellationToken cancellationToken)
    {
        var reader = new DeviceStateReader(watches, path);
        try
        {
            // The backend directory covers state and the frontend key; a watch fires for a path that
            // does not exist yet, so the error node is watched before anything is reported there.
            reader._watches.Add(await reader.WatchAsync(path.Backend, cancellationToken).ConfigureAwait(false));
            reader._watches.Add(await reader.WatchAsync(reader.ErrorPath, cancellationToken).ConfigureAwait(false));
            return reader;
        }
        catch
        {
            await reader.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Reads the nodes the first time, then again only if a watch fired since the last call.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        bool changed = _stale;
        _stale = false;
        foreach (var watch in _watches)
            changed |= watch.TryConsume();
        changed |= _frontendWatch?.TryConsume() == true;
        if (!changed)
            return;
        try
        {
            BackendState = await _store.TryReadStringAsync(_path.Backend + "/state", cancellationToken).ConfigureAwait(false);
            string? frontend = await _store.TryReadStringAsync(_path.Backend + "/frontend", cancellationToken).ConfigureAwait(false);
            string? frontendState = frontend is null ? null : frontend + "/state";
            if (_frontendWatch?.Path != frontendState)
            {
                if (_frontendWatch is { } old)
                {
                    _frontendWatch = null;
                    await old.DisposeAsync().ConfigureAwait(false);
                }
                if (frontendState is not null)
                    _frontendWatch = await WatchAsync(frontendState, cancellationToken).ConfigureAwait(false);
            }
            FrontendState = frontendState is null ? null : await _store.TryReadStringAsync(frontendState, cancellationToken).ConfigureAwait(false);
            Error = await _store.TryReadStringAsync(ErrorPath, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // The signals are consumed: read again next time rather than report a half-read state until the next change.
            _stale = true;
            throw;
        }
    }

    // xenstored fires every new watch once after its OK (xenstore.txt); that event is taken here, so
    // the read that follows the subscription is not repeated at the next report for no change. The
    // wait is bounded: the status report must not hang on a daemon that breaks the rule (then the
    // event comes later and costs one more read).
    private async Task<WatchSubscription> WatchAsync(string path, CancellationToken cancellationToken)
    {
        var watch = await _router.SubscribeAsync(path, cancellationToken).ConfigureAwait(false);
        // Cancelled, not abandoned, on timeout: a wait left running would consume a later change.
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(InitialEventWait);
        try
        {
            await watch.WaitAsync(bounded.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
        catch
        {
            await watch.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return watch;
    }

    private static readonly TimeSpan InitialEventWait = TimeSpan.FromSeconds(2);

    public async ValueTask DisposeAsync()
    {
        foreach (var watch in _watches)
            await watch.DisposeAsync().ConfigureAwait(false);
        _watches.Clear();
        if (_frontendWatch is { } frontend)
        {
            _frontendWatch = null;
            await frontend.DisposeAsync().ConfigureAwait(false);
        }
    }
}
