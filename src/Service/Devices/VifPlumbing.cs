using System.Globalization;
using XenBackends.Native;
using XenBackends.Native.Tap;

namespace XenBackends.Service.Devices;

/// <summary>
/// What vif-bridge "online" did to the dom0 side of a vif, to be redone for a tap that replaced one
/// the script already plumbed: MTU from the backend's <c>mtu</c>, port of the Linux bridge named by
/// <c>bridge</c>, link up (in that order, as the script does: a port joining with a smaller MTU would
/// shrink the bridge, and the link comes up only once it is where its frames should go).
/// </summary>
/// <param name="Mtu">The backend's <c>mtu</c>, when present and valid.</param>
/// <param name="Bridge">The bridge to join; null when there is none or the script is not vif-bridge.</param>
/// <param name="Problems">What cannot be restored, known before touching the interface.</param>
internal sealed record VifPlumbing(int? Mtu, string? Bridge, IReadOnlyList<string> Problems)
{
    /// <summary>
    /// Null unless this is a resumed vif: <c>hotplug-status=connected</c> before the backend reached
    /// InitWait means the toolstack already ran the script for an earlier tap of this device (libxl runs
    /// it only after InitWait, and once), so nothing but the backend will plumb the new one. A first
    /// creation has <c>hotplug-status</c> empty (libxl writes "") and is left to the script entirely.
    /// </summary>
    public static VifPlumbing? ForResume(string? hotplugStatus, string? script, string? bridge, string? mtu)
    {
        if (hotplugStatus != "connected")
            return null;
        var problems = new List<string>();
        int? mtuValue = null;
        if (!string.IsNullOrEmpty(mtu))
        {
            if (int.TryParse(mtu, NumberStyles.None, CultureInfo.InvariantCulture, out int m) && m is >= 68 and <= 65535)
                mtuValue = m;
            else
                problems.Add($"mtu '{mtu}' is not an MTU (68-65535); left at the tap's default");
        }
        // libxl writes the script's full path; a hand-made device may have none, which vif-bridge is libxl's default for.
        string scriptName = string.IsNullOrEmpty(script) ? "vif-bridge" : Path.GetFileName(script);
        string? joinBridge = null;
        if (scriptName != "vif-bridge")
            problems.Add($"hotplug script {script} is not re-run after a worker restart; only link up and MTU were restored");
        else if (!string.IsNullOrEmpty(bridge))
        {
            try
            {
                TapDevice.ValidateName(bridge);
                joinBridge = bridge;
            }
            catch (ArgumentException e)
            {
                problems.Add($"bridge: {e.Message}");
            }
        }
        return new VifPlumbing(mtuValue, joinBridge, problems);
    }

    /// <summary>Applies the plan to <paramref name="tap"/>; returns every problem (the plan's own and the kernel's). Never throws for a kernel refusal.</summary>
    public IReadOnlyList<string> Apply(string tap, ILinks links)
    {
        var problems = new List<string>(Problems);
        if (Mtu is { } mtu)
            Try(problems, () => links.SetMtu(tap, mtu), e => $"setting MTU {mtu} on {tap} failed: {e.Message}");
        if (Bridge is { } bridge)
            Try(problems, () => links.AddToBridge(bridge, tap), e => BridgeProblem(bridge, tap, e));
        // Up even without its bridge: then an administrator's `ip link set <tap> master <bridge>` is all that is missing.
        Try(problems, () => links.SetUp(tap), e => $"bringing {tap} up failed: {e.Message}");
        return problems;
    }

    private static string BridgeProblem(string bridge, string tap, Exception e) => e switch
    {
        XenNativeException { Errno: 19 } => $"bridge {bridge} does not exist: {tap} is not on any bridge, the guest's network is cut off until it is added",   // ENODEV
        XenNativeException { Errno: 95 } => $"{bridge} is not a Linux bridge (Open vSwitch?): {tap} was not added to it",   // EOPNOTSUPP
        XenNativeException { Errno: 16 } => $"{tap} could not join bridge {bridge}: it already has another master",   // EBUSY
        _ => $"adding {tap} to bridge {bridge} failed: {e.Message}",
    };

    private static void Try(List<string> problems, Action step, Func<Exception, string> describe)
    {
        try
        {
            step();
        }
        catch (Exception e) when (e is XenNativeException or ArgumentException)
        {
            problems.Add(describe(e));
        }
    }

    /// <summary>The kernel calls, separate so the ordering and error wording are testable without a namespace.</summary>
    internal interface ILinks
    {
        void SetMtu(string name, int mtu);
        void AddToBridge(string bridge, string port);
        void SetUp(string name);
    }

    /// <summary>The real ones, in the worker's own network namespace.</summary>
    internal sealed class KernelLinks : ILinks
    {
        public static KernelLinks Instance { get; } = new();
        public void SetMtu(string name, int mtu) => LinkControl.SetMtu(name, mtu);
        public void AddToBridge(string bridge, string port) => LinkControl.AddToBridge(bridge, port);
        public void SetUp(string name) => LinkControl.SetUp(name, up: true);
    }
}
