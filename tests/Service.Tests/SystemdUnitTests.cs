using XenBackends.TestSupport;

namespace XenBackends.Service.Tests;

public sealed class SystemdUnitTests
{
    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Backends.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Backends.sln not found above " + AppContext.BaseDirectory);
    }

    private static (int Code, string Output) Run(string file, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var r = ChildProcess.Run(file, args, configure: info =>
        {
            foreach (var (k, v) in env ?? new Dictionary<string, string>()) info.Environment[k] = v;
        });
        return (r.ExitCode, r.Stdout + r.Stderr);
    }

    [Fact]
    public void The_unit_passes_systemd_analyze_verify_and_uninstall_removes_everything()
    {
        // The apphost built next to the tests stands in for the published binary.
        var (code, output) = Run(Path.Combine(RepoRoot(), "systemd", "verify.sh"), [Path.Combine(AppContext.BaseDirectory, "xen-backends")]);
        Assert.True(code == 0, output);
        Assert.Contains("systemd-analyze verify: ok", output, StringComparison.Ordinal);
        Assert.Contains("install/uninstall round trip: ok", output, StringComparison.Ordinal);
    }

    [Fact]
    public void The_hotplug_script_refuses_to_run_outside_libxl()
    {
        var (code, output) = Run(Path.Combine(RepoRoot(), "systemd", "block-xen-backends"), ["add"], new Dictionary<string, string> { ["XENBUS_PATH"] = "" });
        Assert.Equal(1, code);
        Assert.Contains("XENBUS_PATH is not set", output, StringComparison.Ordinal);
    }

    [Fact]
    public void The_modprobe_file_keeps_both_kernel_backends_from_loading()
    {
        var lines = File.ReadAllLines(Path.Combine(RepoRoot(), "systemd", "xen-backends-modprobe.conf"));
        Assert.Contains("install xen-blkback /bin/false", lines);
        Assert.Contains("install xen-netback /bin/false", lines);
    }
}
