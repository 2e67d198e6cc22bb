using System.Collections.Concurrent;
using System.Globalization;
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
/// Does what Xen's stock scripts do to xenstore. vif-bridge "online" ends with <c>hotplug-status=connected</c>
/// (xen-hotplug-common.sh <c>success</c>), which Linux netback waits for before Connected. The stock
/// /etc/xen/scripts/block "add" names the device it checked (<c>write_dev</c>: physical-device as hex
/// major:minor, physical-device-path) and then reports success, as the lab recorded. Any other script
/// (the project's own, a test's) is treated as writing nothing. Every run is recorded.
/// </summary>
public sealed class DefaultHotplugScripts : IHotplugScripts
{
    /// <summary>The script libxl uses for a disk when the config names none.</summary>
    public const string StockBlockScript = "/etc/xen/scripts/block";

    private readonly ConcurrentQueue<HotplugInvocation> _runs = new();

    public IReadOnlyCollection<HotplugInvocation> Runs => _runs;

    public async Task RunAsync(HotplugInvocation invocation, XenStoreClient dom0, CancellationToken cancellationToken)
    {
        _runs.Enqueue(invocation);
        if (invocation is { Kind: "vif", Action: "online" })
            await dom0.WriteAsync(invocation.BackendPath + "/hotplug-status", "connected", cancellationToken).ConfigureAwait(false);
        else if (invocation is { Kind: "vbd", Action: "add", Script: StockBlockScript })
            await BlockAddAsync(invocation.BackendPath, dom0, cancellationToken).ConfigureAwait(false);
    }

    private static async Task BlockAddAsync(string backendPath, XenStoreClient dom0, CancellationToken ct)
    {
        string target = await dom0.ReadStringAsync(backendPath + "/params", ct).ConfigureAwait(false);
        // A block device has a major:minor to name. For a regular file the real script would attach a
        // loop device and name that; there are no loop devices to give out here, so a file is named by
        // its path alone (DEVIATIONS.md).
        if (PhysicalDevice(target) is { } device)
            await dom0.WriteAsync(backendPath + "/physical-device", device, ct).ConfigureAwait(false);
        await dom0.WriteAsync(backendPath + "/physical-device-path", target, ct).ConfigureAwait(false);
        await dom0.WriteAsync(backendPath + "/hotplug-status", "connected", ct).ConfigureAwait(false);
    }

    /// <summary>The block device's numbers as <c>stat -L -c %t:%T</c> prints them, or null if it is none.</summary>
    private static string? PhysicalDevice(string target)
    {
        string resolved;
        try
        {
            resolved = File.ResolveLinkTarget(target, returnFinalTarget: true)?.FullName ?? target;
        }
        catch (IOException)
        {
            return null;
        }
        // The kernel lists every block device, with its decimal major:minor, under /sys/class/block.
        string sysDev = Path.Combine("/sys/class/block", Path.GetFileName(resolved), "dev");
        if (!resolved.StartsWith("/dev/", StringComparison.Ordinal) || !File.Exists(sysDev))
            return null;
        return FormatPhysicalDevice(File.ReadAllText(sysDev).Trim());
    }

    /// <summary>sysfs's decimal "259:1" becomes the block script's hex "103:1".</summary>
    public static string FormatPhysicalDevice(string decimalMajorMinor)
    {
        string[] parts = decimalMajorMinor.Split(':');
        if (parts.Length != 2)
            throw new FormatException($"'{decimalMajorMinor}' is not major:minor");
        return string.Create(CultureInfo.InvariantCulture,
            $"{uint.Parse(parts[0], CultureInfo.InvariantCulture):x}:{uint.Parse(parts[1], CultureInfo.InvariantCulture):x}");
    }
}
