namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>
/// One <c>disk=[...]</c> entry of an xl config, restricted to what the phy backend (backend/vbd) uses:
/// <c>format=raw, vdev=xvda, access=rw, script=..., target=/img</c>. A script makes libxl choose phy
/// without looking at the target, exactly as for the lab's guest.
/// </summary>
public sealed record DiskSpec(string Vdev, string Target)
{
    public bool ReadWrite { get; init; } = true;

    /// <summary>Relative names resolve in /etc/xen/scripts, as libxl's <c>libxl__abs_path</c> does.</summary>
    public string Script { get; init; } = "block";

    public bool IsCdrom { get; init; }

    public bool Removable { get; init; }

    /// <summary>Written as <c>direct-io-safe=1</c> only when set.</summary>
    public bool DirectIoSafe { get; init; }

    /// <summary>libxl's default is on for writable disks, off for read-only ones.</summary>
    public bool? DiscardEnable { get; init; }

    /// <summary>Frontend <c>trusted</c>: libxl writes 0 only when LIBXL_DISK_BACKEND_UNTRUSTED is set.</summary>
    public bool Trusted { get; init; } = true;

    public ushort BackendDomid { get; init; }
}
