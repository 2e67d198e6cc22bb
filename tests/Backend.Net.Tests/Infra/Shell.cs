using XenBackends.TestSupport;

namespace XenBackends.Backend.Net.Tests.Infra;

/// <summary>Runs setup commands (ip, sysctl through ip netns exec); any failure fails the test with the command's stderr.</summary>
internal static class Shell
{
    // Throws rather than failing the test: some callers tolerate a command that fails (cleanup).
    public static string Run(string file, params string[] args)
    {
        var r = ChildProcess.Run(file, args, "needs iproute2", TimeSpan.FromSeconds(30));
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"{ChildProcess.Describe(file, args)} failed ({r.ExitCode}): {r.Stderr}");
        return r.Stdout;
    }
}
