using XenBackends.Native.Linux;

namespace XenBackends.Service.Worker;

/// <summary>
/// What a worker keeps once it is connected: a guest's worker is the process a compromised guest would
/// attack, so it runs with no_new_privs and only the capabilities its configured kinds use for the rest
/// of its life (taps for vif, images not owned by root for vbd; devices can be hot-added, so these stay).
/// gntdev, evtchn and xenstore need none, only root's ownership of their nodes.
/// </summary>
internal static class WorkerPrivileges
{
    public static IReadOnlyList<Capability> For(IEnumerable<string> kinds)
    {
        var keep = new List<Capability>();
        if (kinds.Contains("vbd", StringComparer.Ordinal))
            keep.Add(Capability.DacOverride);
        if (kinds.Contains("vif", StringComparer.Ordinal))
            keep.Add(Capability.NetAdmin);
        return keep;
    }

    public static string Describe(ulong effective) =>
        effective == 0 ? "none"
        : string.Join(",", Enum.GetValues<Capability>().Where(c => (effective & (1UL << (int)c)) != 0).Select(c => "CAP_" + Name(c)));

    private static string Name(Capability c) => c switch
    {
        Capability.DacOverride => "DAC_OVERRIDE",
        Capability.NetAdmin => "NET_ADMIN",
        _ => c.ToString(),
    };
}
