using System.Globalization;
using System.Runtime.InteropServices;

namespace XenBackends.Native.Linux;

/// <summary>The capabilities a backend process may need (linux/capability.h numbers).</summary>
public enum Capability
{
    /// <summary>Open images (and their directories) not owned by root.</summary>
    DacOverride = 1,

    /// <summary>Create taps (TUNSETIFF), set MTU, join bridges, bring links up.</summary>
    NetAdmin = 12,
}

/// <summary>
/// One-way privilege reduction for a process that serves untrusted guests: no_new_privs (an execve can
/// never gain privileges again, capabilities(7)), no ambient capabilities, and the bounding, permitted,
/// effective and inheritable sets cut down to what is kept. Nothing here can be undone by the process.
/// </summary>
public static unsafe partial class ProcessPrivileges
{
    private const int PR_CAPBSET_DROP = 24;
    private const int PR_SET_NO_NEW_PRIVS = 38;
    private const int PR_CAP_AMBIENT = 47;
    private const int PR_CAP_AMBIENT_CLEAR_ALL = 4;
    private const uint LINUX_CAPABILITY_VERSION_3 = 0x20080522;
    private const int EPERM = 1;
    private const int EINVAL = 22;

    [StructLayout(LayoutKind.Sequential)]
    private struct CapUserHeader
    {
        public uint Version;
        public int Pid;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapUserData
    {
        public uint Effective;
        public uint Permitted;
        public uint Inheritable;
    }

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport("libc", EntryPoint = "capget", SetLastError = true)]
    private static partial int capget(CapUserHeader* header, CapUserData* data);

    [LibraryImport("libc", EntryPoint = "capset", SetLastError = true)]
    private static partial int capset(CapUserHeader* header, CapUserData* data);

    /// <summary>
    /// Restricts the calling process to <paramref name="keep"/> (intersected with what it has) and sets
    /// no_new_privs. Returns the effective set afterwards as a bit mask (bit n = capability n).
    /// </summary>
    public static ulong Restrict(IEnumerable<Capability> keep)
    {
        ArgumentNullException.ThrowIfNull(keep);
        ulong keepMask = 0;
        foreach (var c in keep)
            keepMask |= 1UL << (int)c;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            throw LinuxCallException.FromErrno("prctl(PR_SET_NO_NEW_PRIVS)");
        // Before 4.3 there are no ambient capabilities: EINVAL means there is nothing to clear.
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && Marshal.GetLastPInvokeError() != EINVAL)
            throw LinuxCallException.FromErrno("prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
        // The bounding set needs CAP_SETPCAP to shrink; without it (systemd's CapabilityBoundingSet already
        // applied) EPERM is fine: with no_new_privs no execve can add capabilities anyway. Dropped while
        // CAP_SETPCAP may still be effective, i.e. before capset below.
        int last = LastCapability();
        for (int cap = 0; cap <= last; cap++)
        {
            if ((keepMask & (1UL << cap)) != 0 || prctl(PR_CAPBSET_DROP, (nuint)cap, 0, 0, 0) == 0)
                continue;
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EPERM && errno != EINVAL)
                throw new LinuxCallException($"prctl(PR_CAPBSET_DROP, {cap})", errno);
        }
        var header = new CapUserHeader { Version = LINUX_CAPABILITY_VERSION_3 };
        CapUserData* data = stackalloc CapUserData[2];
        if (capget(&header, data) != 0)
            throw LinuxCallException.FromErrno("capget");
        for (int i = 0; i < 2; i++)
        {
            uint mask = (uint)(keepMask >> (32 * i));
            data[i].Effective &= mask;
            data[i].Permitted &= mask;
            data[i].Inheritable &= mask;
        }
        header = new CapUserHeader { Version = LINUX_CAPABILITY_VERSION_3 };
        if (capset(&header, data) != 0)
            throw LinuxCallException.FromErrno("capset");
        return data[0].Effective | ((ulong)data[1].Effective << 32);
    }

    private static int LastCapability()
    {
        try
        {
            return int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim(), NumberStyles.None, CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return 63; // EINVAL for the ones past the kernel's last, tolerated above
        }
    }
}
