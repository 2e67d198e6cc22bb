using System.Globalization;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>
/// The nodes <c>libxl__domain_make</c> and the build step write for a new domain, with their permissions:
/// the home directory and its device/, control/, cpu/, memory/ are dom0-owned and guest-readable
/// (roperm n0 r&lt;domid&gt;); the places the guest writes (control/shutdown, data, drivers, feature, attr,
/// error, device/suspend/event-channel) are guest-owned (rwperm n&lt;domid&gt;).
/// </summary>
internal static class DomainNodes
{
    public static string VmPath(Guid uuid) => "/vm/" + uuid.ToString("D", CultureInfo.InvariantCulture);

    public static async Task WriteAsync(XenStoreOperations t, DomainSpec spec, Guid uuid, CancellationToken ct)
    {
        uint domid = spec.Domid;
        string dom = $"/local/domain/{domid}";
        string vm = VmPath(uuid);
        string libxl = $"/libxl/{domid}";
        XsPermission[] noperm = [new(0, XsAccess.None)];
        XsPermission[] roperm = [new(0, XsAccess.None), new(domid, XsAccess.Read)];
        XsPermission[] rwperm = [new(domid, XsAccess.None)];

        await RemoveIfPresentAsync(t, dom, ct).ConfigureAwait(false);
        await LibxlXs.MkNodAsync(t, dom, roperm, ct).ConfigureAwait(false);
        await RemoveIfPresentAsync(t, vm, ct).ConfigureAwait(false);
        await LibxlXs.MkNodAsync(t, vm, roperm, ct).ConfigureAwait(false);
        await RemoveIfPresentAsync(t, libxl, ct).ConfigureAwait(false);
        await LibxlXs.MkNodAsync(t, libxl, noperm, ct).ConfigureAwait(false);
        await LibxlXs.MkNodAsync(t, libxl + "/device", noperm, ct).ConfigureAwait(false);

        await t.WriteAsync(dom + "/vm", vm, ct).ConfigureAwait(false);
        await t.WriteAsync(dom + "/name", spec.Name, ct).ConfigureAwait(false);
        foreach (string sub in new[] { "cpu", "memory", "device", "control" })
            await LibxlXs.MkNodAsync(t, dom + "/" + sub, roperm, ct).ConfigureAwait(false);
        if (spec.Type == GuestType.Hvm)
            await LibxlXs.MkNodAsync(t, dom + "/hvmloader", roperm, ct).ConfigureAwait(false);
        foreach (string sub in new[] { "control/shutdown", "control/feature-poweroff", "control/feature-reboot", "control/feature-suspend" })
            await LibxlXs.MkNodAsync(t, dom + "/" + sub, rwperm, ct).ConfigureAwait(false);
        if (spec.Type == GuestType.Hvm)
        {
            await LibxlXs.MkNodAsync(t, dom + "/control/feature-s3", rwperm, ct).ConfigureAwait(false);
            await LibxlXs.MkNodAsync(t, dom + "/control/feature-s4", rwperm, ct).ConfigureAwait(false);
        }
        foreach (string sub in new[] { "control/sysrq", "device/suspend/event-channel", "data", "drivers", "feature", "attr", "error" })
            await LibxlXs.MkNodAsync(t, dom + "/" + sub, rwperm, ct).ConfigureAwait(false);

        await t.WriteAsync(vm + "/uuid", uuid.ToString("D", CultureInfo.InvariantCulture), ct).ConfigureAwait(false);
        await t.WriteAsync(vm + "/name", spec.Name, ct).ConfigureAwait(false);
        await t.WriteAsync(dom + "/control/platform-feature-multiprocessor-suspend", "1", ct).ConfigureAwait(false);
        await t.WriteAsync(dom + "/control/platform-feature-xs_reset_watches", "1", ct).ConfigureAwait(false);
        await t.WriteAsync(libxl + "/type", spec.Type.ToString().ToLowerInvariant(), ct).ConfigureAwait(false);

        // libxl__build_post: what a backend may read about the domain (memory, its own id).
        string kb = spec.MemoryKb.ToString(CultureInfo.InvariantCulture);
        await t.WriteAsync(dom + "/memory/static-max", kb, ct).ConfigureAwait(false);
        await t.WriteAsync(dom + "/memory/target", kb, ct).ConfigureAwait(false);
        await t.WriteAsync(dom + "/domid", domid.ToString(CultureInfo.InvariantCulture), ct).ConfigureAwait(false);
    }

    private static async Task RemoveIfPresentAsync(XenStoreOperations t, string path, CancellationToken ct)
    {
        if (await LibxlXs.ExistsAsync(t, path, ct).ConfigureAwait(false))
            await t.RemoveAsync(path, ct).ConfigureAwait(false);
    }
}
