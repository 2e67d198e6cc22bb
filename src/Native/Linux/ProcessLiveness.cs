using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>Whether a process still exists, for locks in memory shared between processes.</summary>
public static class ProcessLiveness
{
    /// <summary>False only when no process has <paramref name="pid"/> (kill(pid, 0) fails with ESRCH).</summary>
    public static bool Exists(int pid) => pid > 0 && (LibC.kill(pid, 0) == 0 || LibC.errno != LibC.ESRCH);
}
