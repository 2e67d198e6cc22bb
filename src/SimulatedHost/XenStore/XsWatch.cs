namespace XenBackends.SimulatedHost.XenStore;

/// <summary>
/// A registered watch. <see cref="Path"/> is canonical (absolute or @special); <see cref="Requested"/> is
/// what the client sent, because events for a relative watch are reported relative too.
/// </summary>
internal sealed record XsWatch(XsServerConnection Owner, string Path, string Requested, string Token)
{
    public bool Relative => Requested.Length > 0 && Requested[0] != '/' && Requested[0] != '@';

    /// <summary>The event path as this watcher should see it.</summary>
    public string Report(string eventPath)
    {
        if (!Relative) return eventPath;
        var home = Owner.HomePath + "/";
        return eventPath.StartsWith(home, StringComparison.Ordinal) ? eventPath[home.Length..] : eventPath;
    }

    /// <summary>True when <paramref name="path"/> is this watch's node or below it.</summary>
    public bool Covers(string path) => IsSameOrBelow(path, Path);

    public static bool IsSameOrBelow(string path, string ancestor) =>
        path == ancestor
        || ancestor == "/" && path.StartsWith('/')
        || path.Length > ancestor.Length && path.StartsWith(ancestor, StringComparison.Ordinal) && path[ancestor.Length] == '/';
}
