namespace XenBackends.Service.Hosting;

/// <summary>
/// Which host a process talks to, in a form that survives exec: the supervisor hands it to every
/// worker on the command line, so a worker reaches exactly the xenstored and hypervisor its supervisor does.
/// </summary>
/// <param name="XenStoreSocket">xenstored's socket; null means libxenstore's default ($XENSTORED_PATH, /run/xenstored/socket, /dev/xen/xenbus).</param>
/// <param name="SimulatedHostSocket">The simulated hypervisor's socket; null means real Xen.</param>
public sealed record HostSpec(string? XenStoreSocket, string? SimulatedHostSocket)
{
    public static HostSpec RealXen { get; } = new(null, null);

    public bool IsSimulated => SimulatedHostSocket is not null;

    public IXenHost Open() => IsSimulated
        ? SimulatedHostConnection.Connect(SimulatedHostSocket!, XenStoreSocket ?? throw new InvalidOperationException("a simulated host needs its xenstored socket"))
        : RealXenHost.Open(XenStoreSocket);

    public IEnumerable<string> ToArguments()
    {
        if (XenStoreSocket is not null) { yield return "--xenstore-socket"; yield return XenStoreSocket; }
        if (SimulatedHostSocket is not null) { yield return "--sim-host-socket"; yield return SimulatedHostSocket; }
    }
}
