using System.Runtime.InteropServices;

namespace XenBackends.Block.Bench;

/// <summary>
/// CPU time from clock_gettime: nanosecond resolution and no allocation, so it can be read inside the
/// window whose allocations are being counted (Process.TotalProcessorTime allocates).
/// </summary>
internal static class CpuClock
{
    private const int ClockProcessCpuTime = 2;
    private const int ClockThreadCpuTime = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec value);

    /// <summary>CPU time of every thread of this process (including io_uring workers) in nanoseconds.</summary>
    public static long ProcessNanoseconds() => Read(ClockProcessCpuTime);

    /// <summary>CPU time of the calling thread in nanoseconds.</summary>
    public static long ThreadNanoseconds() => Read(ClockThreadCpuTime);

    private static long Read(int clock)
    {
        if (ClockGetTime(clock, out Timespec t) != 0)
            throw new InvalidOperationException($"clock_gettime({clock}) failed: errno {Marshal.GetLastPInvokeError()}");
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }
}
