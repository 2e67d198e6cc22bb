using XenBackends.Service.Sim;
using XenBackends.TestSupport;

namespace XenBackends.Service.Tests;

/// <summary>`xen-backends sim` run as a user would, as a separate process.</summary>
public sealed class SimCommandTests
{
    private static (int Exit, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var r = ChildProcess.Run(file, args, timeout: TimeSpan.FromSeconds(180),
            configure: info => info.Environment.Remove(Devices.DeviceKinds.TestKindsVariable));
        return (r.ExitCode, r.Stdout, r.Stderr);
    }

    private static string Dll => Path.Combine(AppContext.BaseDirectory, "xen-backends.dll");

    [Fact]
    public void Sim_as_root_drives_disk_and_nic_verifies_the_data_and_tears_down()
    {
        // In a namespace of its own, so its tap can never meet anything else on this machine.
        using var ns = new NetNamespace();
        var (exit, stdout, stderr) = Run("ip", ns.Prefix("dotnet", Dll, "sim", "--seconds", "3"));

        string context = stdout + "\n" + stderr;
        Assert.True(exit == 0, $"exit {exit}\n{context}");
        string[] lines = stdout.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("summary after ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  disk data verified OK: ", StringComparison.Ordinal) && !l.Contains(": 0 4 KiB", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  network data verified OK: 0 corrupt frames", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  disk latency (guest-observed): 4 KiB read p50 ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  backend vbd/51712 (Connected) per `xen-backends status`: ", StringComparison.Ordinal) && l.Contains("wr_req=", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  backend vif/0 (Connected) per `xen-backends status`: ", StringComparison.Ordinal) && l.Contains("tx_packets=", StringComparison.Ordinal));
        string teardown = Assert.Single(lines, l => l.StartsWith("  teardown: ", StringComparison.Ordinal));
        Assert.Matches(@"^  teardown: guest destroyed, worker pid \d+ exited, backend nodes removed, tap vif\d+\.0 gone, temp dir removed$", teardown);
        Assert.Equal("RESULT: OK", lines.Last(l => l.Length > 0));
        Assert.DoesNotContain("vif", NetNamespace.Run("ip", "-n", ns.Name, "-o", "link", "show"), StringComparison.Ordinal);
        // Not a terminal: plain progress lines, no cursor movement.
        Assert.DoesNotContain("\x1b[", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Sim_without_root_says_the_network_is_skipped_and_runs_the_disk_alone()
    {
        var (exit, stdout, stderr) = Run("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
            "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp", "dotnet", Dll, "sim", "--seconds", "2");

        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("  NETWORK SKIPPED: creating the guest's tap needs root", stdout, StringComparison.Ordinal);
        Assert.Contains("\n  disk data verified OK: ", stdout, StringComparison.Ordinal);
        Assert.Contains("\n  network: skipped\n", stdout, StringComparison.Ordinal);
        Assert.EndsWith("temp dir removed\nRESULT: OK\n", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void The_block_pattern_tells_generations_blocks_and_single_bit_flips_apart()
    {
        var block = new byte[BlockPattern.BlockSize];
        var scratch = new byte[BlockPattern.BlockSize];
        BlockPattern.Fill(block, 7, 3);
        Assert.True(BlockPattern.Matches(block, 7, 3, scratch));
        Assert.False(BlockPattern.Matches(block, 7, 2, scratch));
        Assert.False(BlockPattern.Matches(block, 8, 3, scratch));
        Assert.False(BlockPattern.Matches(new byte[BlockPattern.BlockSize], 7, 3, scratch));
        Assert.True(BlockPattern.Matches(new byte[BlockPattern.BlockSize], 7, 0, scratch)); // never written: the sparse image's zeros
        block[4000] ^= 1;
        Assert.False(BlockPattern.Matches(block, 7, 3, scratch));
    }
}
