using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>
/// <c>libxl__device_generic_add</c>: in the caller's transaction, the libxl record, the frontend directory
/// (guest-owned, backend domain may read) and the backend directory (backend-owned, guest may read).
/// </summary>
internal static class DeviceNodes
{
    public static async Task AddAsync(
        XenStoreOperations t,
        AttachedDevice device,
        IReadOnlyList<KeyValuePair<string, string>> back,
        IReadOnlyList<KeyValuePair<string, string>> front,
        IReadOnlyList<KeyValuePair<string, string>> roFront,
        CancellationToken ct)
    {
        uint domid = device.Path.FrontendDomId;
        uint backendDomid = device.Path.BackendDomId;
        XsPermission[] frontendPerms = [new(domid, XsAccess.None), new(backendDomid, XsAccess.Read)];
        XsPermission[] roFrontendPerms = [new(backendDomid, XsAccess.None), new(domid, XsAccess.Read)];
        XsPermission[] backendPerms = [new(backendDomid, XsAccess.None), new(domid, XsAccess.Read)];
        string fe = device.FrontendPath;
        string be = device.BackendPath;
        string libxl = device.LibxlPath;

        if (await LibxlXs.ExistsAsync(t, libxl, ct).ConfigureAwait(false))
            await t.RemoveAsync(libxl, ct).ConfigureAwait(false);
        await t.WriteAsync(libxl + "/frontend", fe, ct).ConfigureAwait(false);
        await t.WriteAsync(libxl + "/backend", be, ct).ConfigureAwait(false);

        if (await LibxlXs.ExistsAsync(t, fe, ct).ConfigureAwait(false))
            await t.RemoveAsync(fe, ct).ConfigureAwait(false);
        await t.MkdirAsync(fe, ct).ConfigureAwait(false);
        await t.SetPermissionsAsync(fe, frontendPerms, ct).ConfigureAwait(false);
        await t.WriteAsync(fe + "/backend", be, ct).ConfigureAwait(false);
        await LibxlXs.WriteVPermsAsync(t, fe, front, frontendPerms, ct).ConfigureAwait(false);
        if (roFront.Count > 0)
            await LibxlXs.WriteVPermsAsync(t, fe, roFront, roFrontendPerms, ct).ConfigureAwait(false);

        if (await LibxlXs.ExistsAsync(t, be, ct).ConfigureAwait(false))
            await t.RemoveAsync(be, ct).ConfigureAwait(false);
        await t.MkdirAsync(be, ct).ConfigureAwait(false);
        await t.SetPermissionsAsync(be, backendPerms, ct).ConfigureAwait(false);
        await t.WriteAsync(be + "/frontend", fe, ct).ConfigureAwait(false);
        await LibxlXs.WriteVAsync(t, be, back, ct).ConfigureAwait(false);
        // libxl keeps a (never updated) copy of the backend entries in its own record too.
        await LibxlXs.WriteVAsync(t, libxl, back, ct).ConfigureAwait(false);
    }

    /// <summary><c>libxl__device_destroy</c>: frontend, backend and libxl record, each with its emptied parents.</summary>
    public static async Task DestroyAsync(XenStoreOperations t, AttachedDevice device, CancellationToken ct)
    {
        await LibxlXs.PathCleanupAsync(t, device.FrontendPath, ct).ConfigureAwait(false);
        await LibxlXs.PathCleanupAsync(t, device.BackendPath, ct).ConfigureAwait(false);
        await LibxlXs.PathCleanupAsync(t, device.LibxlPath, ct).ConfigureAwait(false);
    }
}
