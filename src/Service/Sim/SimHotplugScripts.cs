using System.Diagnostics;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.XenStore;

namespace XenBackends.Service.Sim;

/// <summary>
/// What vif-bridge does for the demo, minus the bridge: brings the guest's tap up (IPv6 off first, so
/// the host kernel sends the guest no chatter of its own) and reports hotplug-status=connected, which
/// the backend waits for before Connected. Disks need nothing from their script.
/// </summary>
internal sealed class SimHotplugScripts : IHotplugScripts
{
    public async Task RunAsync(HotplugInvocation invocation, XenStoreClient dom0, CancellationToken cancellationToken)
    {
        if (invocation is not { Kind: "vif", Action: "online" }) return;
        string tap = invocation.Environment["vif"];
        try
        {
            await File.WriteAllTextAsync($"/proc/sys/net/ipv6/conf/{tap}/disable_ipv6", "1", cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A kernel without IPv6 has nothing to silence.
        }
        await RunAsync(cancellationToken, "ip", "link", "set", "dev", tap, "up").ConfigureAwait(false);
        await dom0.WriteAsync(invocation.BackendPath + "/hotplug-status", "connected", cancellationToken).ConfigureAwait(false);
    }

    private static async Task RunAsync(CancellationToken cancellationToken, string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot run {file}");
        string error = await process.StandardError.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {error.Trim()}");
    }
}
