using System.Text.Json;
using XenBackends.Service.Supervisor;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;

namespace XenBackends.Service.Tests;

/// <summary>The supervisor with the real vif kind: the worker, exec'd into a test-made network namespace, creates a real tap.</summary>
public sealed class NetWorkerTests
{
    [Fact]
    public async Task The_vif_tap_exists_while_the_guest_runs_carries_its_frames_and_is_gone_after_destroy()
    {
        using var ns = new NetNamespace();
        await using var sim = await ToolstackHost.CreateAsync();
        var worker = SimHost.Worker;
        var command = new WorkerCommand("ip", ns.Prefix(worker.FileName, [.. worker.PrefixArguments]));
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vif"), sim.Spec, command, sim.Dir);
        var guest = await sim.CreateGuestAsync(23, "net1");
        var nic = await sim.Toolstack.AddNicAsync(23, new NicSpec { DevId = 0 });
        await using var front = await SimulatedNetfront.AttachAsync(guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 });
        await harness.StepAsync(() => front.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        int pid = harness.Supervisor.WorkerPids()[23];

        Assert.True(ns.HasLink("vif23.0"), "the tap is in the test's namespace");
        Assert.False(Directory.Exists("/sys/class/net/vif23.0"), "and not in the machine's");
        ns.Ip("link", "set", "dev", "vif23.0", "up");
        long before = TapReceivedPackets(ns, "vif23.0");
        var frame = new byte[200];
        new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x16, 0x3e, 0, 23, 0, 0x88, 0xb5 }.CopyTo(frame, 0);
        for (int i = 0; i < 10; i++)
            Assert.Equal(0, await front.SendAsync(frame));
        // Frames the guest sent are frames the tap received on the host side.
        await Eventually.TrueAsync(() => TapReceivedPackets(ns, "vif23.0") >= before + 10, "10 guest frames counted by the tap");

        await sim.Toolstack.DestroyDomainAsync(23);

        await harness.StepAsync(() => Eventually.TrueAsync(() => !Processes.Alive(pid), "the worker exits"));
        await Eventually.TrueAsync(() => !ns.HasLink("vif23.0"), "the tap is gone");
        await Eventually.TrueAsync(() => sim.GoneAsync("/local/domain/0/backend/vif/23"), "backend/vif/23 removed");
        await Eventually.TrueAsync(() => harness.Supervisor.Snapshot().Guests.Count == 0, "the supervisor forgot the guest");
    }

    [Fact]
    public async Task A_SIGKILLed_vif_worker_is_restarted_recreates_the_tap_and_the_guests_frames_flow_again()
    {
        using var ns = new NetNamespace();
        await using var sim = await ToolstackHost.CreateAsync();
        var worker = SimHost.Worker;
        var command = new WorkerCommand("ip", ns.Prefix(worker.FileName, [.. worker.PrefixArguments]));
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vif"), sim.Spec, command, sim.Dir);
        var guest = await sim.CreateGuestAsync(24, "net2");
        var nic = await sim.Toolstack.AddNicAsync(24, new NicSpec { DevId = 0 });
        await using var front = await SimulatedNetfront.AttachAsync(guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 });
        await harness.StepAsync(() => front.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        int firstPid = harness.Supervisor.WorkerPids()[24];
        var frame = new byte[200];
        new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x16, 0x3e, 0, 24, 0, 0x88, 0xb5 }.CopyTo(frame, 0);

        System.Diagnostics.Process.GetProcessById(firstPid).Kill();
        // The tap was the dead worker's: its last fd closed, the kernel removed it.
        await Eventually.TrueAsync(() => !Processes.Alive(firstPid) && !ns.HasLink("vif24.0"), "the killed worker and its tap are gone");
        int secondPid = 0;
        await harness.StepAsync(() => Eventually.TrueAsync(() => harness.Supervisor.WorkerPids().TryGetValue(24, out secondPid) && secondPid != firstPid, "a new worker for domain 24"));
        await harness.StepAsync(() => Eventually.TrueAsync(() => ns.HasLink("vif24.0"), "the new worker recreated the tap"));
        // Nothing reruns the hotplug script after a restart, so here the test plays vif-bridge again.
        ns.Ip("link", "set", "dev", "vif24.0", "up");
        long before = TapReceivedPackets(ns, "vif24.0");
        await harness.StepAsync(() => Eventually.TrueAsync(async () =>
        {
            await front.SendAsync(frame).WaitAsync(TimeSpan.FromSeconds(10));
            return TapReceivedPackets(ns, "vif24.0") > before;
        }, "the guest's frames reach the new tap"));
        Assert.Equal("4", await sim.Toolstack.Dom0.TryReadStringAsync(nic.BackendPath + "/state"));
        Assert.Equal("killed by signal 9", harness.Supervisor.Snapshot().Guests.Single().LastExit);
    }

    private static long TapReceivedPackets(NetNamespace ns, string tap)
    {
        using var doc = JsonDocument.Parse(ns.Ip("-s", "-j", "link", "show", "dev", tap));
        return doc.RootElement[0].GetProperty("stats64").GetProperty("rx").GetProperty("packets").GetInt64();
    }
}
