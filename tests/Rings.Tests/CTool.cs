using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;

namespace XenBackends.Rings.Tests;

/// <summary>
/// Compiles the C sources in c/ against Debian's Xen headers at test time. A missing compiler or
/// header fails the test (it never skips): the proof needs the real thing.
/// </summary>
internal static class CTool
{
    private static readonly string SourceDir = Path.Combine(AppContext.BaseDirectory, "c");
    private static readonly Lazy<string> OutputDir = new(() => Directory.CreateTempSubdirectory("xb-rings-c-").FullName);
    private static readonly ConcurrentDictionary<string, Lazy<string>> Built = new();

    /// <summary>Builds c/<paramref name="source"/> with <paramref name="flags"/> once per test run; returns the output path.</summary>
    public static string Build(string source, string outputName, params string[] flags)
    {
        return Built.GetOrAdd(outputName, _ => new Lazy<string>(() => Compile(source, outputName, flags))).Value;
    }

    private static string Compile(string source, string outputName, string[] flags)
    {
        if (!File.Exists("/usr/include/xen/io/ring.h") || !File.Exists("/usr/include/xen/io/blkif.h"))
            Assert.Fail("Xen's public headers are missing (/usr/include/xen/io): install libxen-dev");
        string output = Path.Combine(OutputDir.Value, outputName);
        var psi = new ProcessStartInfo("gcc")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        foreach (string flag in flags)
            psi.ArgumentList.Add(flag);
        foreach (string flag in new[] { "-O2", "-Wall", "-Werror", "-Werror=implicit-function-declaration", "-I", SourceDir, "-o", output, Path.Combine(SourceDir, source) })
            psi.ArgumentList.Add(flag);
        Process gcc;
        try
        {
            gcc = Process.Start(psi)!;
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"cannot run gcc ({e.Message}): install gcc, gcc-multilib and libxen-dev");
            throw;
        }
        using (gcc)
        {
            Task<string> stderr = gcc.StandardError.ReadToEndAsync();
            gcc.StandardOutput.ReadToEnd();
            gcc.WaitForExit();
            if (gcc.ExitCode != 0)
            {
                string hint = flags.Contains("-m32") ? " (-m32 needs gcc-multilib)" : "";
                Assert.Fail($"gcc {string.Join(' ', flags)} {source} failed{hint}:\n{stderr.Result}");
            }
        }
        return output;
    }

    /// <summary>Runs a built program to completion and returns its stdout.</summary>
    public static string Run(string program)
    {
        using var p = Process.Start(new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{program} exited {p.ExitCode}: {stderr.Result}");
        return stdout;
    }
}
