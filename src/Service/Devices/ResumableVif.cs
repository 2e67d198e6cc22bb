using XenBackends.Backend.Net;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Service.Devices;

/// <summary>
/// A <see cref="NetDevice"/> that, when it replaces a tap a crashed worker owned, redoes the
/// plumbing vif-bridge did for the old one (libxl ran the script once, at device creation, and never
/// runs it again; the old tap vanished with the old process). On a first creation it only forwards:
/// the script stays in charge. What cannot be restored (no such bridge, say) is logged and kept in the
/// device's xenbus error node while the device is served; the guest's rings are served regardless.
/// </summary>
internal sealed class ResumableVif : IBackendDevice
{
    private readonly VifPlumbing.ILinks _links;
    private readonly Action<string> _log;
    private VifPlumbing? _plan;
    private XenbusDevice? _device;
    private string? _problem;
    private CancellationTokenSource? _reporterStop;
    private Task? _reporter;

    public ResumableVif(NetDevice inner, Action<string> log, VifPlumbing.ILinks? links = null)
    {
        Inner = inner;
        _log = log;
        _links = links ?? VifPlumbing.KernelLinks.Instance;
    }

    public NetDevice Inner { get; }

    public async Task PrepareAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        _device = device;
        // Read before the tap exists and before InitWait: only then does "connected" prove the script
        // ran for an earlier tap (libxl runs it after InitWait).
        string? hotplug = await device.ReadBackendAsync("hotplug-status", cancellationToken).ConfigureAwait(false);
        await Inner.PrepareAsync(device, cancellationToken).ConfigureAwait(false);
        if (hotplug != "connected")
            return;
        _plan = VifPlumbing.ForResume(hotplug,
            await device.ReadBackendAsync("script", cancellationToken).ConfigureAwait(false),
            await device.ReadBackendAsync("bridge", cancellationToken).ConfigureAwait(false),
            await device.ReadBackendAsync("mtu", cancellationToken).ConfigureAwait(false));
        await PlumbAsync(device, "after a worker restart", cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The NetDevice re-created its tap after it was deleted under it (NetDeviceOptions.TapRecreated):
    /// the toolstack will not run vif-bridge again, so redo its work for the new tap, exactly as for a
    /// tap re-created by a restarted worker; what cannot be done stays reported in the error node.
    /// </summary>
    public async Task ReplumbRecreatedAsync(string tap, CancellationToken cancellationToken)
    {
        var device = _device ?? throw new InvalidOperationException("a tap is re-created only after prepare");
        _plan = VifPlumbing.ForResume("connected",
            await device.ReadBackendAsync("script", cancellationToken).ConfigureAwait(false),
            await device.ReadBackendAsync("bridge", cancellationToken).ConfigureAwait(false),
            await device.ReadBackendAsync("mtu", cancellationToken).ConfigureAwait(false));
        await PlumbAsync(device, $"after {tap} was deleted under the backend", cancellationToken).ConfigureAwait(false);
    }

    public Task<bool> IsReadyToConnectAsync(XenbusDevice device, CancellationToken cancellationToken) =>
        Inner.IsReadyToConnectAsync(device, cancellationToken);

    public async Task ConnectAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        // A guest reconnecting is the next moment anything happens to this device: if the administrator
        // has created the missing bridge since, this is where the vif finally joins it.
        if (_problem is not null)
            await PlumbAsync(device, "at a guest reconnect", cancellationToken).ConfigureAwait(false);
        await Inner.ConnectAsync(device, cancellationToken).ConfigureAwait(false);
    }

    public Task DisconnectAsync(CancellationToken cancellationToken) => Inner.DisconnectAsync(cancellationToken);

    private async Task PlumbAsync(XenbusDevice device, string why, CancellationToken cancellationToken)
    {
        string tap = Inner.InterfaceName ?? throw new InvalidOperationException("the tap exists once prepared");
        var problems = _plan!.Apply(tap, _links);
        await StopReporterAsync().ConfigureAwait(false);
        if (problems.Count == 0)
        {
            _problem = null;
            _log($"{device.Path}: re-plumbed {why}: {tap} up{(_plan.Bridge is null ? "" : $" on bridge {_plan.Bridge}")}{(_plan.Mtu is { } m ? $", mtu {m}" : "")} (what vif-bridge did for the previous tap)");
            return;
        }
        _problem = $"re-plumbed {tap} {why}: " + string.Join("; ", problems);
        _log($"{device.Path}: {_problem}");
        _reporterStop = new CancellationTokenSource();
        _reporter = KeepReportedAsync(device, _problem, _reporterStop.Token);
    }

    /// <summary>
    /// Keeps <paramref name="message"/> in the error node while the problem stands: the lifecycle
    /// removes that node on every successful connect (which for a resumed device comes right after
    /// this prepare), so a one-off write would vanish before an administrator could see it.
    /// </summary>
    private static async Task KeepReportedAsync(XenbusDevice device, string message, CancellationToken cancellationToken)
    {
        await Task.Yield();
        string errorDir = device.ErrorPath[..device.ErrorPath.LastIndexOf('/')];
        try
        {
            await using var watch = await device.Watches.SubscribeAsync(errorDir, cancellationToken).ConfigureAwait(false);
            while (true)
            {
                // The first wait takes the change the subscription starts with.
                await watch.WaitAsync(cancellationToken).ConfigureAwait(false);
                // Only a node that is gone is rewritten: another error (a fatal) is newer news, and a
                // removed device must not get an error node back.
                if (await device.Store.TryReadStringAsync(device.ErrorPath, cancellationToken).ConfigureAwait(false) is null
                    && await device.ReadBackendAsync("state", cancellationToken).ConfigureAwait(false) is not null)
                    await device.WriteErrorAsync(message, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (XenStoreException)
        {
            // xenstored is going away or the device with it; the log line stands.
        }
    }

    private async Task StopReporterAsync()
    {
        if (_reporterStop is null) return;
        await _reporterStop.CancelAsync().ConfigureAwait(false);
        if (_reporter is not null) await _reporter.ConfigureAwait(false);
        _reporterStop.Dispose();
        _reporterStop = null;
        _reporter = null;
    }

    public async ValueTask DisposeAsync()
    {
        await StopReporterAsync().ConfigureAwait(false);
        await Inner.DisposeAsync().ConfigureAwait(false);
    }
}
