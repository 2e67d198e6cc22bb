using XenBackends.TestSupport;

namespace XenBackends.Native.Tests;

/// <summary>Runs gcc or a program it built; a missing tool or a failed run fails the test with what to install.</summary>
internal static class CommandRun
{
    public static string Run(string file, string[] args, string doing, string installHint) =>
        ChildProcess.Checked(file, args, doing, installHint);
}
