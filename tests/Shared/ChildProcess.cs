using System.ComponentModel;
using System.Diagnostics;

namespace XenBackends.TestSupport;

/// <summary>
/// Runs a program a test needs (gcc, ip, losetup, a built probe, the service itself) to its end.
/// Both pipes are read at once, so a child that fills one while we wait on the other cannot hang
/// the test; the wait is bounded; a program that is not installed fails the test with what to
/// install, never skips it. Compiled into every test project (tests/Directory.Build.props).
/// </summary>
internal static class ChildProcess
{
    public readonly record struct Result(int ExitCode, string Stdout, string Stderr);

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(2);

    /// <param name="installHint">What to install when <paramref name="file"/> cannot be started.</param>
    /// <param name="configure">Changes to the start info (environment) before the start.</param>
    public static Result Run(string file, IEnumerable<string> args, string? installHint = null, TimeSpan? timeout = null, Action<ProcessStartInfo>? configure = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
            start.ArgumentList.Add(a);
        configure?.Invoke(start);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new Win32Exception($"{file} did not start");
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"cannot run {file} ({e.Message}){(installHint is null ? "" : "; " + installHint)}");
            throw;
        }
        using (process)
        {
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            TimeSpan bound = timeout ?? DefaultTimeout;
            if (!process.WaitForExit(bound))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                Assert.Fail($"{Describe(file, args)} did not finish within {bound.TotalSeconds:0} s:\n{stdout.Result}\n{stderr.Result}");
            }
            return new Result(process.ExitCode, stdout.Result, stderr.Result);
        }
    }

    /// <summary>Runs to a zero exit, or fails the test saying what it was doing, the child's output and the hint; returns stdout.</summary>
    public static string Checked(string file, IEnumerable<string> args, string? doing = null, string? installHint = null, TimeSpan? timeout = null)
    {
        Result r = Run(file, args, installHint, timeout);
        if (r.ExitCode != 0)
            Assert.Fail($"{doing ?? Describe(file, args)} failed (exit {r.ExitCode}): {r.Stderr}{r.Stdout}{(installHint is null ? "" : "; " + installHint)}");
        return r.Stdout;
    }

    public static string Describe(string file, IEnumerable<string> args) => $"{file} {string.Join(' ', args)}";
}
