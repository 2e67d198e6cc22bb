using System.Globalization;

namespace XenBackends.Hostile.Tests;

/// <summary>What the backend process costs: open fds, GC heap, and one named thread's CPU time (/proc).</summary>
internal static class ProcessProbe
{
    public static int OpenFds() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>Asserts at most <paramref name="slack"/> more fds are open than in <paramref name="before"/>, naming what they are.</summary>
    public static void AssertFdsBounded(Dictionary<string, string> before, int slack) => AssertFdsBounded(before, FdTargets(), slack);

    /// <summary>The same against a snapshot <paramref name="now"/> taken the way <paramref name="before"/> was (a filtered one, say).</summary>
    public static void AssertFdsBounded(Dictionary<string, string> before, Dictionary<string, string> now, int slack)
    {
        if (now.Count <= before.Count + slack)
            return;
        var added = now.Where(kv => !before.TryGetValue(kv.Key, out var t) || t != kv.Value)
            .GroupBy(kv => kv.Value.Split(':')[0]).Select(g => $"{g.Key} x{g.Count()}");
        Assert.Fail($"{now.Count} fds open, {before.Count} before (bound +{slack}); new: {string.Join(", ", added)}");
    }

    public static Dictionary<string, string> FdTargets()
    {
        var map = new Dictionary<string, string>();
        foreach (string fd in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                map[Path.GetFileName(fd)] = new FileInfo(fd).LinkTarget ?? "?";
            }
            catch (IOException)
            {
                // closed while listing
            }
        }
        return map;
    }

    public static long HeapAfterFullGc()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    /// <summary>CPU time (user + system) of the whole process, all threads (Environment.CpuUsage).</summary>
    public static TimeSpan ProcessCpu() => Environment.CpuUsage.TotalTime;

    /// <summary>CPU time of every thread now, keyed "tid name" (for naming the thread that burned CPU).</summary>
    public static Dictionary<string, TimeSpan> ThreadCpus()
    {
        var map = new Dictionary<string, TimeSpan>();
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                string stat = File.ReadAllText(Path.Combine(task, "stat"));
                string name = stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')];
                string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                long ticks = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
                map[$"{Path.GetFileName(task)} {name}"] = TimeSpan.FromMilliseconds(ticks * 10);
            }
            catch (IOException)
            {
            }
        }
        return map;
    }

    /// <summary>The threads that used the most CPU since <paramref name="before"/>, as text.</summary>
    public static string TopThreads(Dictionary<string, TimeSpan> before, int count = 5) =>
        string.Join(", ", ThreadCpus()
            .Select(kv => (kv.Key, Used: kv.Value - before.GetValueOrDefault(kv.Key)))
            .OrderByDescending(t => t.Used).Take(count).Select(t => $"{t.Key}: {t.Used.TotalMilliseconds} ms"));

    /// <summary>
    /// CPU time (user + system) of the thread whose name is <paramref name="name"/>, from
    /// /proc/self/task/*/stat in clock ticks (USER_HZ = 100 on Linux, i.e. 10 ms). Throws if no such
    /// thread exists, so a renamed worker fails the test instead of measuring nothing.
    /// </summary>
    public static TimeSpan ThreadCpu(string name)
    {
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            string comm;
            try
            {
                comm = File.ReadAllText(Path.Combine(task, "comm")).Trim();
                if (comm != name) continue;
                string stat = File.ReadAllText(Path.Combine(task, "stat"));
                // Fields after the ")" closing comm: state is field 3; utime and stime are 14 and 15.
                string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                long ticks = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
                return TimeSpan.FromMilliseconds(ticks * 10);
            }
            catch (IOException)
            {
                continue; // the thread ended while we looked
            }
        }
        throw new InvalidOperationException($"no thread named {name}");
    }
}
