using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>The libxl xenstore helpers the toolstack mirrors (libxl_xshelp.c).</summary>
internal static class LibxlXs
{
    /// <summary><c>libxl__xs_mknod</c>: an empty node with an explicit permission list.</summary>
    public static async Task MkNodAsync(XenStoreOperations xs, string path, XsPermission[] perms, CancellationToken ct)
    {
        await xs.MkdirAsync(path, ct).ConfigureAwait(false);
        await xs.SetPermissionsAsync(path, perms, ct).ConfigureAwait(false);
    }

    /// <summary><c>libxl__xs_writev</c>: new nodes inherit their parent's permissions.</summary>
    public static async Task WriteVAsync(XenStoreOperations xs, string dir, IEnumerable<KeyValuePair<string, string>> kvs, CancellationToken ct)
    {
        foreach (var (key, value) in kvs)
            await xs.WriteAsync(dir + "/" + key, value, ct).ConfigureAwait(false);
    }

    /// <summary><c>libxl__xs_writev_perms</c>: every key gets the list explicitly.</summary>
    public static async Task WriteVPermsAsync(XenStoreOperations xs, string dir, IEnumerable<KeyValuePair<string, string>> kvs, XsPermission[] perms, CancellationToken ct)
    {
        foreach (var (key, value) in kvs)
        {
            await xs.WriteAsync(dir + "/" + key, value, ct).ConfigureAwait(false);
            await xs.SetPermissionsAsync(dir + "/" + key, perms, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// <c>libxl__xs_path_cleanup</c>: removes the node, then every ancestor left with neither a value nor
    /// children, so detaching the last vbd also drops backend/vbd/&lt;domid&gt; (and backend/ if it empties).
    /// </summary>
    public static async Task PathCleanupAsync(XenStoreOperations xs, string path, CancellationToken ct)
    {
        try
        {
            await xs.RemoveAsync(path, ct).ConfigureAwait(false);
        }
        catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.ENOENT)
        {
            return;
        }
        for (int slash = path.LastIndexOf('/'); slash > 0; slash = path.LastIndexOf('/'))
        {
            path = path[..slash];
            string? value = await xs.TryReadStringAsync(path, ct).ConfigureAwait(false);
            if (value is null || value.Length != 0) return;
            if ((await xs.DirectoryAsync(path, ct).ConfigureAwait(false)).Count != 0) return;
            await xs.RemoveAsync(path, ct).ConfigureAwait(false);
        }
    }

    public static async Task<bool> ExistsAsync(XenStoreOperations xs, string path, CancellationToken ct) =>
        await xs.TryReadStringAsync(path, ct).ConfigureAwait(false) is not null;
}
