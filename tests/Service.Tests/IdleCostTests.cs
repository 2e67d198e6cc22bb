using XenBackends.Service.Control;
using XenBackends.Service.Supervisor;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using Xunit.Abstractions;

namespace XenBackends.Service.Tests;

/// <summary>
/// A connected guest with nothing to do must cost dom0 nothing: every watch loop of the service and
/// its worker waits for xenstored's events. A loop that polls instead shows up as xenstore requests
/// (the Xen lab found the vif's rate watch re-reading its keys ~17,000 times a second; the worker's
/// status report read 4 nodes per device every second).
/// </summary>
public sealed class IdleCostTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_idle_guest_with_a_disk_and_a_nic_makes_no_xenstore_traffic_and_its_status_still_follows_changes()
    {
        using var ns = new NetNamespace();
        await using var sim = await ToolstackHost.CreateAsync();
        var command = SimHost.WorkerIn(ns);
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
        // Nothing polls: the worker's status report re-reads a device's nodes only when a watch fired.
        Assert.True(idle <= 2, $"{idle} xenstore requests in 1 s of an idle guest with a disk and a nic");

        // Quiet is not deaf: the status still follows the error node and the frontend's state.
        DeviceStatus Vif() => harness.Supervisor.Snapshot().Guests.Single().Devices.Single(d => d.Kind == "vif");
        Assert.Equal(("Connected", "Connected", null), (Vif().BackendState, Vif().FrontendState, Vif().Error));
        string errorNode = "/local/domain/0/error/backend/vif/32/0/error";
        await sim.Toolstack.Dom0.WriteAsync(errorNode, "written by the test");
        await harness.StepAsync(() => Eventually.TrueAsync(() => Vif().Error == "written by the test", "the error node in the status"));
        await sim.Toolstack.Dom0.RemoveAsync(errorNode);
        await harness.StepAsync(() => Eventually.TrueAsync(() => Vif().Error is null, "the removed error node gone from the status"));
        // The frontend starts closing (written for the guest; the attached netfront then closes too):
        // both ends leave Connected, and the status follows them.
        await sim.Toolstack.Dom0.WriteAsync("/local/domain/32/device/vif/0/state", "5");
        await harness.StepAsync(() => Eventually.TrueAsync(
            () => Vif() is { FrontendState: "Closing" or "Closed", BackendState: "Closing" or "Closed" }, "the closing NIC in the status"));
    }
}
