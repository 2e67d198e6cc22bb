namespace XenBackends.XenStore;

/// <summary>
/// One XS_WATCH_EVENT: the node that changed (or the watched path, for the initial event and for a
/// recursive removal above it) and the token given to <see cref="XenStoreClient.WatchAsync"/>.
/// Events can be spurious: re-read state rather than trusting that something changed.
/// </summary>
public readonly record struct XenStoreWatchEvent(string Path, string Token);
