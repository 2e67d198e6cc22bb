namespace XenBackends.SimulatedHost;

/// <summary><c>GTF_*</c> bits of a v1 grant entry's flags (xen/grant_table.h).</summary>
public static class GrantTableFlags
{
    public const ushort GTF_invalid = 0;
    public const ushort GTF_permit_access = 1;
    public const ushort GTF_accept_transfer = 2;
    public const ushort GTF_transitive = 3;
    public const ushort GTF_type_mask = 3;
    public const ushort GTF_readonly = 1 << 2;
    public const ushort GTF_reading = 1 << 3;
    public const ushort GTF_writing = 1 << 4;
}

/// <summary>A snapshot of one <c>grant_entry_v1</c>: { u16 flags; domid_t domid; u32 frame; }.</summary>
public readonly record struct GrantEntry(ushort Flags, ushort Domid, uint Frame);

/// <summary>Errno values the simulated hypervisor reports, as Xen and the Linux evtchn device do.</summary>
internal static class Errno
{
    public const int ESRCH = 3;
    public const int EINVAL = 22;
    public const int ENOSPC = 28;
    public const int ENOTCONN = 107;
}
