using XenBackends.TestSupport;

namespace XenBackends.Service.Tests;

/// <summary>
/// A network namespace made for one test; worker processes are exec'd into it through
/// `ip netns exec` (which execs, so the supervisor's pid is the worker's), and every tap they create
/// lives and dies there, never in the machine's own namespace. Deleted afterwards.
/// </summary>
internal sealed class NetNamespace : IDisposable
{
    public NetNamespace()
    {
        Name = "xbsvc" + Guid.NewGuid().ToString("N")[..8];
        Run("ip", "netns", "add", Name);
    }

    public string Name { get; }

    /// <summary>Runs <paramref name="file"/> with <paramref name="args"/> inside the namespace.</summary>
    public string[] Prefix(string file, params string[] args) => ["netns", "exec", Name, file, .. args];

    public bool HasLink(string name) => Run("ip", "-n", Name, "-o", "link", "show").Contains($": {name}:", StringComparison.Ordinal);

    public string Ip(params string[] args) => Run("ip", ["-n", Name, .. args]);

    // Throws rather than failing the test: Dispose tolerates a namespace that is already gone.
    public static string Run(string file, params string[] args)
    {
        var r = ChildProcess.Run(file, args, "needs iproute2", TimeSpan.FromSeconds(60));
        if (r.ExitCode != 0) throw new InvalidOperationException($"{ChildProcess.Describe(file, args)}: exit {r.ExitCode}: {r.Stderr}");
        return r.Stdout;
    }

    public void Dispose()
    {
        try { Run("ip", "netns", "delete", Name); } catch (InvalidOperationException) { }
    }
}
