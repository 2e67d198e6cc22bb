using System.Collections.Concurrent;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>
/// One run of a hotplug script: <c>&lt;script&gt; add|remove</c> for a vbd, <c>&lt;script&gt; online|offline</c>
/// (with <c>type_if=vif</c>) for a vif, with the environment libxl's <c>libxl__get_hotplug_script_info</c> builds.
/// </summary>
public sealed record HotplugInvocation(string Kind, string Action, string Script, string BackendPath, IReadOnlyDictionary<string, string> Environment);

/// <summary>Runs hotplug scripts on behalf of the simulated toolstack, with dom0's xenstore connection.</summary>
public interface IHotplugScripts
{
    Task RunAsync(HotplugInvocation invocation, XenStoreClient dom0, CancellationToken cancellationToken);
}

/// <summary>
/// Does what the scripts the lab uses do to xenstore: vif-bridge "online" ends with
/// <c>hotplug-status=connected</c> (xen-hotplug-common.sh <c>success</c>), which Linux netback waits for
/// before Connected; the lab's disk script does nothing that a backend reads. Every run is recorded.
/// </summary>
public sealed class DefaultHotplugScripts : IHotplugScripts
{
    private readonly ConcurrentQueue<HotplugInvocation> _runs = new();

    public IReadOnlyCollection<HotplugInvocation> Runs => _runs;

    public async Task RunAsync(HotplugInvocation invocation, XenStoreClient dom0, CancellationToken cancellationToken)
    {
        _runs.Enqueue(invocation);
        if (invocation is { Kind: "vif", Action: "online" })
            await dom0.WriteAsync(invocation.BackendPath + "/hotplug-status", "connected", cancellationToken).ConfigureAwait(false);
    }
}
