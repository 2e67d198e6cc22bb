using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;

namespace XenBackends.Service.Tests;

/// <summary>
/// A worker runs with no_new_privs, only the capabilities of its configured kinds, whatever the
/// supervisor had (the tests run as root with every capability), and the seccomp deny list on every
/// thread (Native.Tests proves the filter itself), and still serves its guest.
/// </summary>
public sealed class WorkerPrivilegeTests
{
    private static Dictionary<string, string> ProcStatus(int pid) => ReadStatus($"/proc/{pid}/status");

    private static Dictionary<string, string> ReadStatus(string file) =>
        File.ReadAllLines(file)
            .Select(l => l.Split(':', 2))
            .Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => p[1].Trim());

    [Fact]
    public async Task A_vbd_and_vif_worker_keeps_only_dac_override_and_net_admin_and_still_serves_its_disk()
    {
        // The test process, and so the supervisor, is privileged: whatever the worker lacks it dropped itself.
        Assert.NotEqual("0000000000000000", ProcStatus(Environment.ProcessId)["CapEff"]);
        await using var sim = await ToolstackHost.CreateAsync();
        var config = sim.Config("vbd");
        config.Kinds = ["vbd", "vif"];
        await using var harness = await SupervisorHarness.StartAsync(config, sim.Spec, SimHost.Worker, sim.Dir);
        var guest = await sim.CreateGuestAsync(30, "confined");
        var disk = await sim.Toolstack.AddDiskAsync(30, new DiskSpec("xvda", sim.CreateImage(8 << 20)) { Script = "block-xen-backends" });
        await using var blk = await SimulatedBlkfront.AttachAsync(guest, disk.DevId, new BlkfrontOptions { MaxQueues = 1 });
        await harness.StepAsync(() => blk.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        int pid = harness.Supervisor.WorkerPids()[30];

        var status = ProcStatus(pid);
        Assert.Equal("1", status["NoNewPrivs"]);
        // Bits 1 (CAP_DAC_OVERRIDE) and 12 (CAP_NET_ADMIN), nothing else, in every set that grants anything.
        Assert.Equal("0000000000001002", status["CapEff"]);
        Assert.Equal("0000000000001002", status["CapPrm"]);
        Assert.Equal("0000000000001002", status["CapBnd"]);
        Assert.Equal("0000000000000000", status["CapInh"]);
        Assert.Equal("0000000000000000", status["CapAmb"]);
        AssertFilteredEverywhere(pid);
        var data = new byte[4096];
        new Random(30).NextBytes(data);
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(8, data));
        var back = new byte[data.Length];
        Assert.Equal(BlkifRsp.Okay, await blk.ReadAsync(8, back));
        Assert.Equal(data, back);
        await Eventually.TrueAsync(() => harness.Log.Lines.Any(l => l.Contains("capabilities kept: CAP_DAC_OVERRIDE,CAP_NET_ADMIN", StringComparison.Ordinal)), "the worker logs what it kept");
        await Eventually.TrueAsync(() => harness.Log.Lines.Any(l => l.Contains("system calls denied (seccomp)", StringComparison.Ordinal)), "the worker logs its filter");
        // Threads started after the filter (queue threads, I/O threads) inherit it.
        AssertFilteredEverywhere(pid);
    }

    // Seccomp mode 2 (filter) on the process and on every one of its threads, the ones that existed
    // when it was installed (TSYNC) and the ones started since.
    private static void AssertFilteredEverywhere(int pid)
    {
        Assert.Equal("2", ProcStatus(pid)["Seccomp"]);
        foreach (string task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            string tid = Path.GetFileName(task);
            try
            {
                Assert.True(ReadStatus(Path.Combine(task, "status"))["Seccomp"] == "2", $"thread {tid} ({File.ReadAllText(Path.Combine(task, "comm")).Trim()}) runs unfiltered");
            }
            catch (IOException)
            {
                // the thread ended while we looked
            }
        }
    }

    [Fact]
    public async Task A_worker_for_a_kind_that_needs_no_capability_keeps_none()
    {
        await using var sim = await SimHost.CreateAsync();
        var guest = await sim.CreateGuestAsync(31, "bare");
        await using var harness = await SupervisorHarness.StartAsync(sim.Config(), sim.Spec, SimHost.Worker, sim.Dir);
        await harness.StepAsync(() => guest.ConnectAsync());
        await guest.EchoAsync(1);
        var status = ProcStatus(harness.Supervisor.WorkerPids()[31]);
        Assert.Equal("1", status["NoNewPrivs"]);
        Assert.Equal("0000000000000000", status["CapEff"]);
        Assert.Equal("0000000000000000", status["CapPrm"]);
        Assert.Equal("0000000000000000", status["CapBnd"]);
        Assert.Equal("2", status["Seccomp"]);
    }

    [Fact]
    public async Task SyscallFilter_false_leaves_the_filter_off_and_the_rest_of_the_drop_on()
    {
        await using var sim = await SimHost.CreateAsync();
        var guest = await sim.CreateGuestAsync(32, "unfiltered");
        var config = sim.Config();
        config.SyscallFilter = false;
        await using var harness = await SupervisorHarness.StartAsync(config, sim.Spec, SimHost.Worker, sim.Dir);
        await harness.StepAsync(() => guest.ConnectAsync());
        await guest.EchoAsync(1);
        var status = ProcStatus(harness.Supervisor.WorkerPids()[32]);
        Assert.Equal("0", status["Seccomp"]);
        Assert.Equal("1", status["NoNewPrivs"]);
        Assert.Equal("0000000000000000", status["CapEff"]);
        await Eventually.TrueAsync(() => harness.Log.Lines.Any(l => l.Contains("system call filter off (syscallFilter: false)", StringComparison.Ordinal)), "the worker says the filter is off");
    }
}
