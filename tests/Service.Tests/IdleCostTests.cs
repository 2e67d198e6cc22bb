using XenBackends.Service.Supervisor;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using Xunit.Abstractions;

namespace XenBackends.Service.Tests;

/// <summary>
/// A connected guest with nothing to do must cost dom0 nothing: every watch loop of the service and
/// its worker waits for xenstored's events. A loop that polls instead shows up as xenstore requests
/// (the Xen lab found the vif's rate watch re-reading its keys ~17,000 times a second).
/// </summary>
public sealed class IdleCostTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_idle_guest_with_a_disk_and_a_nic_makes_no_xenstore_traffic()
    {
        using var ns = new NetNamespace();
        await using var sim = await ToolstackHost.CreateAsync();
        var worker = SimHost.Worker;
        var command = new WorkerCommand("ip", ns.Prefix(worker.FileName, [.. worker.PrefixArguments]));
        var config = sim.Config("vbd");
        config.Kinds = ["vbd", "vif"];
        await using var harness = await SupervisorHarness.StartAsync(config, sim.Spec, command, sim.Dir);
        var guest = await sim.CreateGuestAsync(32, "idle");
        var disk = await sim.Toolstack.AddDiskAsync(32, new DiskSpec("xvda", sim.CreateImage(8 << 20)) { Script = "block-xen-backends" });
        var nic = await sim.Toolstack.AddNicAsync(32, new NicSpec { DevId = 0 });
        await using var blk = await SimulatedBlkfront.AttachAsync(guest, disk.DevId, new BlkfrontOptions { MaxQueues = 1 });
        await using var net = await SimulatedNetfront.AttachAsync(guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 });
        await harness.StepAsync(() => blk.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        await harness.StepAsync(() => net.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        await harness.StepAsync(() => Eventually.TrueAsync(
            () => harness.Supervisor.Snapshot().Guests.Single().Devices.Count == 2, "both devices in the worker's status"));

        await Task.Delay(300); // the last handshake writes and their watch events settle
        long before = sim.XenStoreRequests;
        await Task.Delay(1000);
        long idle = sim.XenStoreRequests - before;
        output.WriteLine($"{idle} xenstore requests in 1 s of an idle guest");
        // The worker's once-a-second status report reads 4 nodes per device; anything more is a poll.
        Assert.True(idle <= 2 * 4 * 2, $"{idle} xenstore requests in 1 s of an idle guest with a disk and a nic");
    }
}
