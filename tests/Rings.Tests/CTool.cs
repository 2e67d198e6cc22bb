using System.Collections.Concurrent;
using XenBackends.TestSupport;

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
        string[] args = [.. flags, "-O2", "-Wall", "-Werror", "-Werror=implicit-function-declaration", "-I", SourceDir, "-o", output, Path.Combine(SourceDir, source)];
        var gcc = ChildProcess.Run("gcc", args, "install gcc, gcc-multilib and libxen-dev");
        if (gcc.ExitCode != 0)
        {
            string hint = flags.Contains("-m32") ? " (-m32 needs gcc-multilib)" : "";
            Assert.Fail($"gcc {string.Join(' ', flags)} {source} failed{hint}:\n{gcc.Stderr}");
        }
        return output;
    }

    /// <summary>Runs a built program to completion and returns its stdout.</summary>
    public static string Run(string program) => ChildProcess.Checked(program, []);
}
