using XenBackends.XenStore;

namespace XenBackends.Xenbus;

/// <summary>
/// Finds the devices the toolstack asks this backend domain to serve: every
/// <c>backend/&lt;kind&gt;/&lt;domid&gt;/&lt;devid&gt;</c> directory, for the kinds configured. Rescans on
/// any change below the watched directories and reports the whole current set, so a missed or
/// coalesced event never loses a device.
/// </summary>
public sealed class BackendDiscovery
{
    private readonly WatchRouter _watches;
    private readonly uint _backendDomId;
    private readonly IReadOnlyList<string> _kinds;

    public BackendDiscovery(WatchRouter watches, uint backendDomId, IReadOnlyList<string> kinds)
    {
        _watches = watches;
        _backendDomId = backendDomId;
        _kinds = kinds;
    }

    public string KindPath(string kind) => $"/local/domain/{_backendDomId}/backend/{kind}";

    /// <summary>Every device currently present; malformed entries (non-numeric ids) are ignored.</summary>
    public async Task<IReadOnlySet<DevicePath>> ScanAsync(CancellationToken cancellationToken = default)
    {
        var found = new HashSet<DevicePath>();
        foreach (string kind in _kinds)
        {
            foreach (string dom in await ListAsync(KindPath(kind), cancellationToken).ConfigureAwait(false))
            {
                if (!DevicePath.TryId(dom, out uint domId)) continue;
                foreach (string dev in await ListAsync($"{KindPath(kind)}/{dom}", cancellationToken).ConfigureAwait(false))
                    if (DevicePath.TryId(dev, out uint devId))
                        found.Add(new DevicePath(_backendDomId, kind, domId, devId));
            }
        }
        return found;
    }

    /// <summary>
    /// Calls <paramref name="onChange"/> with the full device set at start and after every change,
    /// until cancelled or the connection dies.
    /// </summary>
    public async Task RunAsync(Func<IReadOnlySet<DevicePath>, Task> onChange, CancellationToken cancellationToken)
    {
        var subscriptions = new List<WatchSubscription>();
        try
        {
            foreach (string kind in _kinds)
                subscriptions.Add(await _watches.SubscribeAsync(KindPath(kind), cancellationToken).ConfigureAwait(false));
            while (true)
            {
                await WatchSubscription.WaitAnyAsync(subscriptions, cancellationToken).ConfigureAwait(false);
                await onChange(await ScanAsync(cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
            }
        }
        finally
        {
            foreach (var s in subscriptions) await s.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<IReadOnlyList<string>> ListAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            return await _watches.Store.DirectoryAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.ENOENT)
        {
            return Array.Empty<string>();
        }
    }
}
