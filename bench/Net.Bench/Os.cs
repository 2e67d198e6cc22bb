using System.Diagnostics;
using System.Runtime.InteropServices;

namespace XenBackends.Net.Bench;

/// <summary>The few OS facts the benchmark needs: CPU clocks, a thread's CPU time, joining a namespace, running ip.</summary>
internal static class Os
{
    private const int ClockProcessCpuTime = 2;
    private const int CloneNewNet = 0x40000000;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec value);

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int nstype);

    /// <summary>CPU time of the whole process (backend, frontend, generators), nanoseconds; allocation-free.</summary>
    public static long ProcessCpuNanoseconds()
    {
        ClockGetTime(ClockProcessCpuTime, out Timespec t);
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }

    /// <summary>The kernel thread id of the first thread whose name starts with <paramref name="prefix"/>.</summary>
    public static int FindThread(string prefix)
    {
        int tid = TryFindThread(prefix);
        return tid > 0 ? tid : throw new InvalidOperationException($"no thread named {prefix}*");
    }

    /// <summary>The id of the first thread whose name starts with <paramref name="prefix"/>, or 0.</summary>
    public static int TryFindThread(string prefix)
    {
        foreach (string dir in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "comm")).StartsWith(prefix, StringComparison.Ordinal))
                    return int.Parse(Path.GetFileName(dir), System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
            }
        }
        return 0;
    }

    /// <summary>Nanoseconds thread <paramref name="tid"/> has run (schedstat's first field).</summary>
    public static long ThreadCpuNanoseconds(int tid)
    {
        string text = File.ReadAllText($"/proc/self/task/{tid}/schedstat");
        return long.Parse(text.AsSpan(0, text.IndexOf(' ')), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Moves the calling thread (only) into network namespace <paramref name="name"/>.</summary>
    public static void EnterNamespace(string name)
    {
        using var handle = File.OpenHandle($"/run/netns/{name}");
        if (SetNs((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
            throw new InvalidOperationException($"setns({name}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    public static void Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)}: {err}");
    }
}
