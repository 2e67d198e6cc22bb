namespace XenBackends.Native.Xen;

/// <summary>Where a Xen dom0 exposes the hypervisor interfaces the backends use.</summary>
public static class XenDevicePaths
{
    /// <summary>Grant mapping and copy; the node libxengnttab itself opens (the path is compiled into it).</summary>
    public const string Gntdev = "/dev/xen/gntdev";

    /// <summary>Event channels; the node libxenevtchn itself opens.</summary>
    public const string Evtchn = "/dev/xen/evtchn";

    /// <summary>xenfs: present (with "control_d" in capabilities) only in a dom0 that mounted it.</summary>
    public const string ProcXenCapabilities = "/proc/xen/capabilities";

    public const string HypervisorType = "/sys/hypervisor/type";
}
