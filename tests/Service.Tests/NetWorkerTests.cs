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
        var command = SimHost.WorkerIn(ns);
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vif"), sim.Spec, command, sim.Dir);
        var guest = await sim.CreateGuestAsync(23, "net1");
        var nic = await sim.Toolstack.AddNicAsync(23, new NicSpec { DevId = 0 });
        await using var front = await SimulatedNetfront.AttachAsync(guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 });
        await BothConnectedAsync(harness, sim, front, nic);
        int pid = harness.Supervisor.WorkerPids()[23];

        Assert.True(ns.HasLink("vif23.0"), "the tap is in the test's namespace");
        Assert.False(Directory.Exists("/sys/class/net/vif23.0"), "and not in the machine's");
        ns.Ip("link", "set", "dev", "vif23.0", "up");
        long before = ReceivedPackets(ns, "vif23.0");
        var frame = new byte[200];
        new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x16, 0x3e, 0, 23, 0, 0x88, 0xb5 }.CopyTo(frame, 0);
        for (int i = 0; i < 10; i++)
            Assert.Equal(0, await front.SendAsync(frame));
        // Frames the guest sent are frames the tap received on the host side.
        await Eventually.TrueAsync(() => ReceivedPackets(ns, "vif23.0") >= before + 10, "10 guest frames counted by the tap");

        await sim.Toolstack.DestroyDomainAsync(23);

        await harness.StepAsync(() => Eventually.TrueAsync(() => !Processes.Alive(pid), "the worker exits"));
        await Eventually.TrueAsync(() => !ns.HasLink("vif23.0"), "the tap is gone");
        await Eventually.TrueAsync(() => sim.GoneAsync("/local/domain/0/backend/vif/23"), "backend/vif/23 removed");
        await Eventually.TrueAsync(() => harness.Supervisor.Snapshot().Guests.Count == 0, "the supervisor forgot the guest");
    }

    [Fact]
    public async Task A_SIGKILLed_vif_worker_is_restarted_and_puts_the_recreated_tap_back_up_on_its_bridge_with_its_mtu()
    {
        using var ns = new NetNamespace();
        // The host's bridge, as an administrator set it up; the toolstack records it in the backend's
        // `bridge` key (and the MTU in `mtu`) exactly as libxl does.
        ns.Ip("link", "add", "xbr24", "type", "bridge");
        ns.Ip("link", "set", "dev", "xbr24", "up");
        await using var sim = await ToolstackHost.CreateAsync();
        var command = SimHost.WorkerIn(ns);
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vif"), sim.Spec, command, sim.Dir);
        var guest = await sim.CreateGuestAsync(24, "net2");
        var nic = await sim.Toolstack.AddNicAsync(24, new NicSpec { DevId = 0, Bridge = "xbr24", Mtu = 1400 });
        Assert.Equal("xbr24", await sim.Toolstack.Dom0.TryReadStringAsync(nic.BackendPath + "/bridge"));
        await using var front = await SimulatedNetfront.AttachAsync(guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 });
        await BothConnectedAsync(harness, sim, front, nic);
        int firstPid = harness.Supervisor.WorkerPids()[24];
        // At creation the hotplug script is in charge (this toolstack's stand-in plumbs nothing): the backend left the tap alone.
        var created = Link(ns, "vif24.0");
        Assert.False(created.Up, "a first-created tap is the script's to bring up");
        Assert.Null(created.Master);
        var frame = new byte[200];
        new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x16, 0x3e, 0, 24, 0, 0x88, 0xb5 }.CopyTo(frame, 0);

        System.Diagnostics.Process.GetProcessById(firstPid).Kill();
        // The tap was the dead worker's: its last fd closed, the kernel removed it.
        await Eventually.TrueAsync(() => !Processes.Alive(firstPid) && !ns.HasLink("vif24.0"), "the killed worker and its tap are gone");
        int secondPid = 0;
        await harness.StepAsync(() => Eventually.TrueAsync(() => harness.Supervisor.WorkerPids().TryGetValue(24, out secondPid) && secondPid != firstPid, "a new worker for domain 24"));
        // Nothing reruns vif-bridge after a restart: the new worker itself must restore what it did.
        await harness.StepAsync(() => Eventually.TrueAsync(() => ns.HasLink("vif24.0") && Link(ns, "vif24.0") is { Up: true, Master: "xbr24" }, "the recreated tap is up on bridge xbr24"));
        Assert.Equal(1400, Link(ns, "vif24.0").Mtu);
        long tapBefore = ReceivedPackets(ns, "vif24.0");
        long bridgeBefore = ReceivedPackets(ns, "xbr24");
        // Broadcasts the guest sends cross the tap into the bridge, which passes them up to its own device.
        await harness.StepAsync(() => Eventually.TrueAsync(async () =>
        {
            await front.SendAsync(frame).WaitAsync(TimeSpan.FromSeconds(10));
            return ReceivedPackets(ns, "vif24.0") > tapBefore && ReceivedPackets(ns, "xbr24") > bridgeBefore;
        }, "the guest's frames reach the new tap and its bridge"));
        Assert.Equal("4", await sim.Toolstack.Dom0.TryReadStringAsync(nic.BackendPath + "/state"));
        Assert.Null(await sim.Toolstack.Dom0.TryReadStringAsync("/local/domain/0/error/backend/vif/24/0/error"));
        Assert.Equal("killed by signal 9", harness.Supervisor.Snapshot().Guests.Single().LastExit);
    }

    [Fact]
    public async Task A_restarted_vif_worker_whose_bridge_is_gone_reports_it_in_the_error_node_and_keeps_serving()
    {
        using var ns = new NetNamespace();
        await using var sim = await ToolstackHost.CreateAsync();
        var command = SimHost.WorkerIn(ns);
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vif"), sim.Spec, command, sim.Dir);
        var guest = await sim.CreateGuestAsync(25, "net3");
        // No xbr25 in this namespace: deleted (or never made) since the script ran at creation.
        var nic = await sim.Toolstack.AddNicAsync(25, new NicSpec { DevId = 0, Bridge = "xbr25" });
        await using var front = await SimulatedNetfront.AttachAsync(guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 });
        await BothConnectedAsync(harness, sim, front, nic);
        int firstPid = harness.Supervisor.WorkerPids()[25];
        var frame = new byte[200];
        new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x16, 0x3e, 0, 25, 0, 0x88, 0xb5 }.CopyTo(frame, 0);

        System.Diagnostics.Process.GetProcessById(firstPid).Kill();
        await Eventually.TrueAsync(() => !Processes.Alive(firstPid) && !ns.HasLink("vif25.0"), "the killed worker and its tap are gone");
        int secondPid = 0;
        await harness.StepAsync(() => Eventually.TrueAsync(() => harness.Supervisor.WorkerPids().TryGetValue(25, out secondPid) && secondPid != firstPid, "a new worker for domain 25"));
        const string errorNode = "/local/domain/0/error/backend/vif/25/0/error";
        await harness.StepAsync(() => Eventually.TrueAsync(async () =>
            (await sim.Toolstack.Dom0.TryReadStringAsync(errorNode))?.Contains("bridge xbr25 does not exist", StringComparison.Ordinal) == true,
            "the missing bridge is reported in the error node"));
        // The worker's stderr reaches the supervisor's log on its own schedule.
        await Eventually.TrueAsync(() => harness.Log.Lines.Any(l => l.Contains("bridge xbr25 does not exist", StringComparison.Ordinal)), "the missing bridge is logged");

        // Still served: the tap is up (only its bridge is missing) and the guest's frames reach it.
        await harness.StepAsync(() => Eventually.TrueAsync(() => Link(ns, "vif25.0") is { Up: true, Master: null }, "the tap is up, on no bridge"));
        long before = ReceivedPackets(ns, "vif25.0");
        await harness.StepAsync(() => Eventually.TrueAsync(async () =>
        {
            await front.SendAsync(frame).WaitAsync(TimeSpan.FromSeconds(10));
            return ReceivedPackets(ns, "vif25.0") > before;
        }, "the guest's frames reach the new tap"));
        Assert.Equal("4", await sim.Toolstack.Dom0.TryReadStringAsync(nic.BackendPath + "/state"));
        // The lifecycle clears the error node when it connects; the report must outlive that.
        await harness.StepAsync(() => Eventually.TrueAsync(async () => await sim.Toolstack.Dom0.TryReadStringAsync(errorNode) is not null, "the report is still there after the connect"));
        Assert.True(Processes.Alive(secondPid), "the worker did not crash");
        Assert.Equal(secondPid, harness.Supervisor.WorkerPids()[25]);
        Assert.Equal("killed by signal 9", harness.Supervisor.Snapshot().Guests.Single().LastExit);
    }

    [Fact]
    public async Task A_tap_deleted_under_a_running_vif_worker_is_recreated_and_put_back_on_its_bridge_by_the_same_worker()
    {
        using var ns = new NetNamespace();
        ns.Ip("link", "add", "xbr26", "type", "bridge");
        ns.Ip("link", "set", "dev", "xbr26", "up");
        await using var sim = await ToolstackHost.CreateAsync();
        var command = SimHost.WorkerIn(ns);
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vif"), sim.Spec, command, sim.Dir);
        var guest = await sim.CreateGuestAsync(26, "net4");
        var nic = await sim.Toolstack.AddNicAsync(26, new NicSpec { DevId = 0, Bridge = "xbr26", Mtu = 1400 });
        await using var front = await SimulatedNetfront.AttachAsync(guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 });
        await BothConnectedAsync(harness, sim, front, nic);
        int pid = harness.Supervisor.WorkerPids()[26];
        // What vif-bridge did at creation (this toolstack's stand-in plumbs nothing).
        ns.Ip("link", "set", "vif26.0", "mtu", "1400");
        ns.Ip("link", "set", "vif26.0", "master", "xbr26");
        ns.Ip("link", "set", "vif26.0", "up");
        int oldIndex = LinkIndex(ns, "vif26.0");

        ns.Ip("link", "del", "vif26.0");
        // The same worker notices, re-creates the tap (a new interface) and redoes vif-bridge's work.
        await harness.StepAsync(() => Eventually.TrueAsync(() => ns.HasLink("vif26.0") && LinkIndex(ns, "vif26.0") != oldIndex
            && Link(ns, "vif26.0") is { Up: true, Master: "xbr26", Mtu: 1400 }, "the re-created tap up on bridge xbr26 with mtu 1400"));
        await Eventually.TrueAsync(() => harness.Log.Lines.Any(l => l.Contains("vif26.0 was deleted under the backend", StringComparison.Ordinal)), "the deletion is logged");
        var frame = new byte[200];
        new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x16, 0x3e, 0, 26, 0, 0x88, 0xb5 }.CopyTo(frame, 0);
        long bridgeBefore = ReceivedPackets(ns, "xbr26");
        await harness.StepAsync(() => Eventually.TrueAsync(async () =>
        {
            await front.SendAsync(frame).WaitAsync(TimeSpan.FromSeconds(10));
            return ReceivedPackets(ns, "xbr26") > bridgeBefore;
        }, "the guest's frames cross the re-created tap into the bridge"));
        await harness.StepAsync(() => Eventually.TrueAsync(async () =>
            await sim.Toolstack.Dom0.TryReadStringAsync("/local/domain/0/error/backend/vif/26/0/error") is null, "the report cleared once re-plumbed"));
        Assert.Equal("4", await sim.Toolstack.Dom0.TryReadStringAsync(nic.BackendPath + "/state"));
        Assert.True(Processes.Alive(pid), "the worker died");
        Assert.Equal(pid, harness.Supervisor.WorkerPids()[26]);
    }

    /// <summary>
    /// Netfront goes Connected as soon as it sees InitWait, before the backend has connected (as
    /// Linux's does), so its own state says nothing about the worker. These tests act on a serving
    /// worker: a tap deleted or a worker killed before its connect is another case (a killed one
    /// leaves the backend in InitWait and its successor connects afresh instead of resuming).
    /// </summary>
    private static async Task BothConnectedAsync(SupervisorHarness harness, ToolstackHost sim, SimulatedNetfront front, AttachedDevice nic)
    {
        await harness.StepAsync(() => front.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        await harness.StepAsync(() => Eventually.TrueAsync(async () =>
            await sim.Toolstack.Dom0.TryReadStringAsync(nic.BackendPath + "/state") == "4", "the backend Connected"));
    }

    private static int LinkIndex(NetNamespace ns, string name)
    {
        using var doc = JsonDocument.Parse(ns.Ip("-j", "link", "show", "dev", name));
        return doc.RootElement[0].GetProperty("ifindex").GetInt32();
    }

    private sealed record LinkView(bool Up, string? Master, int Mtu);

    private static LinkView Link(NetNamespace ns, string name)
    {
        using var doc = JsonDocument.Parse(ns.Ip("-j", "link", "show", "dev", name));
        var link = doc.RootElement[0];
        bool up = link.GetProperty("flags").EnumerateArray().Any(f => f.GetString() == "UP");
        string? master = link.TryGetProperty("master", out var m) ? m.GetString() : null;
        return new LinkView(up, master, link.GetProperty("mtu").GetInt32());
    }

    private static long ReceivedPackets(NetNamespace ns, string link)
    {
        using var doc = JsonDocument.Parse(ns.Ip("-s", "-j", "link", "show", "dev", link));
        return doc.RootElement[0].GetProperty("stats64").GetProperty("rx").GetProperty("packets").GetInt64();
    }
}
