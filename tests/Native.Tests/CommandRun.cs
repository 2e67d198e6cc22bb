using System.ComponentModel;
using System.Diagnostics;

namespace XenBackends.Native.Tests;

/// <summary>Runs gcc or a program it built; a missing tool or a failed run fails the test with what to install.</summary>
internal static class CommandRun
{
    public static string Run(string file, string[] args, string doing, string installHint)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            start.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"{doing}: cannot run {file} ({e.Message}); {installHint}");
            throw;
        }
        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
                Assert.Fail($"{doing} failed (exit {process.ExitCode}): {stderr.Result}{stdout}; {installHint}");
            return stdout;
        }
    }
}
