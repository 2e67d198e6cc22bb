using System.Runtime.InteropServices;
using XenBackends.Native.Linux;
using XenBackends.TestSupport;

namespace XenBackends.Native.Tests;

/// <summary>
/// The workers' seccomp filter, proven outside the test process (a filter cannot be taken off again):
/// the denied numbers against the system's own headers, and the program run by the kernel in
/// children of a small C probe (c/seccomp_probe.c) that installs exactly the bytes the backend
/// builds and then makes each call.
/// </summary>
public class SyscallFilterTests
{
    private const string InstallHint = "install gcc and the kernel headers: apt-get install gcc linux-libc-dev";

    [Fact]
    public void The_denied_numbers_are_the_x86_64_headers_numbers()
    {
        Assert.Equal(Architecture.X64, RuntimeInformation.ProcessArchitecture);
        string dir = Directory.CreateTempSubdirectory("xb-seccomp-nr-").FullName;
        try
        {
            string source = Path.Join(dir, "nr.c"), program = Path.Join(dir, "nr");
            var calls = SyscallFilter.Denied.Append(("clone", SyscallFilter.Clone)).Append(("clone3", SyscallFilter.Clone3)).ToList();
            File.WriteAllText(source, "#include <stdio.h>\n#include <asm/unistd_64.h>\n#include <linux/sched.h>\nint main(void) {\n"
                + string.Concat(calls.Select(d => $"  printf(\"{d.Item1} %d\\n\", __NR_{d.Item1});\n"))
                + "  printf(\"namespace-flags %u\\n\", (unsigned)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET));\n"
                + "  return 0;\n}\n");
            Run("gcc", ["-Wall", "-Werror", "-o", program, source]);
            var fromHeaders = Run(program, []).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(' ')).ToDictionary(p => p[0], p => long.Parse(p[1]));
            foreach (var (name, number) in calls)
                Assert.True(fromHeaders[name] == number, $"{name} is {fromHeaders[name]} in asm/unistd_64.h, {number} in the filter");
            Assert.Equal((long)SyscallFilter.CloneNamespaceFlags, fromHeaders["namespace-flags"]);
            Assert.Equal(SyscallFilter.Denied.Count, SyscallFilter.Denied.Select(d => d.Number).Distinct().Count());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_kernel_running_the_filter_denies_each_listed_call_allows_the_rest_and_kills_other_ABIs()
    {
        string dir = Directory.CreateTempSubdirectory("xb-seccomp-run-").FullName;
        try
        {
            string probe = Path.Join(dir, "probe"), filter = Path.Join(dir, "filter.bin");
            Run("gcc", ["-O2", "-Wall", "-Werror", "-pthread", "-o", probe, Path.Join(AppContext.BaseDirectory, "c", "seccomp_probe.c")]);
            File.WriteAllBytes(filter, MemoryMarshal.AsBytes(SyscallFilter.BuildProgram().AsSpan()).ToArray());
            var probes = new List<string> { "getpid", "x32", "int80", "unfiltered-int80", "unfiltered-getpid",
                "clone", "clone-newuser", "clone3", "thread", "unfiltered-clone-newuser", "unfiltered-clone3" };
            probes.AddRange(SyscallFilter.Denied.Select(d => d.Number.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            var result = Run(probe, [filter, .. probes]).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p[1]);

            Assert.Equal(probes.Count, result.Count);
            Assert.Matches(@"^ret=[1-9][0-9]* errno=0$", result["getpid"]); // everything else goes through
            foreach (var (name, number) in SyscallFilter.Denied)
                Assert.True(result[number.ToString(System.Globalization.CultureInfo.InvariantCulture)] == "eperm", $"{name} ({number}): {result[number.ToString(System.Globalization.CultureInfo.InvariantCulture)]}");
            Assert.Equal("eperm", result["x32"]); // x32 numbers are other calls' numbers with bit 30
            // Namespaces through clone are refused; clone3 is ENOSYS, so threads still start (glibc
            // falls back to clone). Unfiltered, the same calls work here (root): the filter made the difference.
            Assert.Matches(@"^ret=[1-9][0-9]* errno=0$", result["clone"]);
            Assert.Equal("eperm", result["clone-newuser"]);
            Assert.Matches(@"^ret=[1-9][0-9]* errno=0$", result["unfiltered-clone-newuser"]);
            Assert.Equal("ret=-1 errno=38", result["clone3"]);
            Assert.Matches(@"^ret=[1-9][0-9]* errno=0$", result["unfiltered-clone3"]);
            Assert.Equal("ret=1 errno=0", result["thread"]);
            // The i386 ABI numbers calls differently: the filter ends the process. A kernel without
            // it (no IA32_EMULATION) faults the instruction before any filter runs.
            if (result["unfiltered-int80"].StartsWith("ret=", StringComparison.Ordinal) && result["unfiltered-int80"] != "ret=-1 errno=38")
                Assert.Equal("signal=31", result["int80"]); // SIGSYS
            else
                Assert.Equal(result["unfiltered-int80"], result["int80"]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Run(string file, string[] args) => ChildProcess.Checked(file, args, $"running {Path.GetFileName(file)}", InstallHint);
}
