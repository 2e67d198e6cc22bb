using System.Diagnostics;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;

namespace XenBackends.Service.Tests;

/// <summary>The supervisor with the real vbd kind: a blkfront in this process, the block backend in an exec'd worker.</summary>
public sealed class BlockWorkerTests
{
    private static readonly TimeSpan Connect = TimeSpan.FromSeconds(30);

    private static byte[] Data(int seed, int length)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Fact]
    public async Task A_SIGKILLed_vbd_worker_is_restarted_and_the_guests_io_resumes_on_the_same_ring()
    {
        await using var sim = await ToolstackHost.CreateAsync();
        // A long first restart delay, so the read below is issued while no backend exists.
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vbd", initialRestartDelayMs: 1500), sim.Spec, SimHost.Worker, sim.Dir);
        var guest = await sim.CreateGuestAsync(21, "disk1");
        string image = sim.CreateImage(16 << 20);
        var disk = await sim.Toolstack.AddDiskAsync(21, new DiskSpec("xvda", image) { Script = "block-xen-backends" });
        await using var blk = await SimulatedBlkfront.AttachAsync(guest, disk.DevId, new BlkfrontOptions { MaxQueues = 1 });
        await harness.StepAsync(() => blk.WaitConnectedAsync(Connect));
        byte[] before = Data(1, 64 << 10);
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(0, before));
        // Past a ring's worth of requests, as any real guest is: the restarted worker must attach at
        // the shared rsp_prod, not at 0 (in the Xen lab it saw "a bogus req_prod" and halted the ring).
        for (int i = 0; i < 40; i++)
            Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(0, before));
        int firstPid = harness.Supervisor.WorkerPids()[21];

        Process.GetProcessById(firstPid).Kill(); // SIGKILL: the worker releases nothing itself
        await Eventually.TrueAsync(() => !Processes.Alive(firstPid), "the killed worker is dead");
        var back = new byte[before.Length];
        var pendingRead = blk.ReadAsync(0, back);

        int secondPid = 0;
        await harness.StepAsync(() => Eventually.TrueAsync(() => harness.Supervisor.WorkerPids().TryGetValue(21, out secondPid) && secondPid != firstPid, "a new worker for domain 21"));
        // The request put on the ring while no backend existed is answered by the resumed one.
        Assert.Equal(BlkifRsp.Okay, await pendingRead.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(before, back);
        byte[] after = Data(2, 128 << 10);
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(4096, after));
        Assert.Equal(BlkifRsp.Okay, await blk.FlushAsync());
        var afterBack = new byte[after.Length];
        Assert.Equal(BlkifRsp.Okay, await blk.ReadAsync(4096, afterBack));
        Assert.Equal(after, afterBack);

        Assert.True(blk.IsConnected);
        Assert.Equal("4", await sim.Toolstack.Dom0.TryReadStringAsync(disk.BackendPath + "/state"));
        var entry = harness.Supervisor.Snapshot().Guests.Single(g => g.Domid == 21);
        Assert.Equal(1, entry.Restarts);
        Assert.Equal("killed by signal 9", entry.LastExit);
        // Both workers' writes reached the image where the guest put them.
        await using var file = File.OpenRead(image);
        var onDisk = new byte[after.Length];
        file.Position = 4096L * 512;
        await file.ReadExactlyAsync(onDisk);
        Assert.Equal(after, onDisk);
        file.Position = 0;
        await file.ReadExactlyAsync(onDisk.AsMemory(0, before.Length));
        Assert.Equal(before, onDisk[..before.Length]);
    }

    [Fact]
    public async Task A_vbd_detached_and_attached_again_under_the_same_devid_is_served_again_by_the_running_worker()
    {
        // The lab's lifecycle does this on real Xen: xl block-detach, then at once xl block-attach of
        // the same image; libxl reuses the devid and gives the backend 10 s to reach InitWait, while
        // the guest's other device keeps the worker alive.
        await using var sim = await ToolstackHost.CreateAsync();
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vbd"), sim.Spec, SimHost.Worker, sim.Dir);
        var guest = await sim.CreateGuestAsync(24, "reattach");
        var keep = await sim.Toolstack.AddDiskAsync(24, new DiskSpec("xvda", sim.CreateImage(8 << 20, "keep.img")) { Script = "block-xen-backends" });
        string image = sim.CreateImage(8 << 20, "detach.img");
        var disk = await sim.Toolstack.AddDiskAsync(24, new DiskSpec("xvdb", image) { Script = "block-xen-backends" });
        await using var keepBlk = await SimulatedBlkfront.AttachAsync(guest, keep.DevId);
        var blk = await SimulatedBlkfront.AttachAsync(guest, disk.DevId);
        await harness.StepAsync(() => blk.WaitConnectedAsync(Connect));
        byte[] data = Data(5, 64 << 10);
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(0, data));
        int pid = harness.Supervisor.WorkerPids()[24];

        for (int round = 0; round < 3; round++)
        {
            await harness.StepAsync(() => sim.Toolstack.DetachDiskAsync(disk).WaitAsync(Connect));
            await blk.DisposeAsync();
            // No pause: the new directory may appear while the worker still finishes the old device.
            disk = await sim.Toolstack.AddDiskAsync(24, new DiskSpec("xvdb", image) { Script = "block-xen-backends" }).WaitAsync(Connect);
            blk = await SimulatedBlkfront.AttachAsync(guest, disk.DevId);
            await harness.StepAsync(() => blk.WaitConnectedAsync(Connect));
            var back = new byte[data.Length];
            Assert.Equal(BlkifRsp.Okay, await blk.ReadAsync(0, back));
            Assert.Equal(data, back);
        }
        await blk.DisposeAsync();
        Assert.True(keepBlk.IsConnected);
        Assert.Equal(pid, harness.Supervisor.WorkerPids()[24]);
    }

    [Fact]
    public async Task A_destroyed_guest_with_a_vbd_leaves_no_worker_and_no_backend_node()
    {
        await using var sim = await ToolstackHost.CreateAsync();
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vbd"), sim.Spec, SimHost.Worker, sim.Dir);
        var guest = await sim.CreateGuestAsync(22, "doomed");
        var disk = await sim.Toolstack.AddDiskAsync(22, new DiskSpec("xvda", sim.CreateImage(8 << 20)) { Script = "block-xen-backends" });
        await using var blk = await SimulatedBlkfront.AttachAsync(guest, disk.DevId);
        await harness.StepAsync(() => blk.WaitConnectedAsync(Connect));
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(0, Data(3, 4096)));
        int pid = harness.Supervisor.WorkerPids()[22];

        await sim.Toolstack.DestroyDomainAsync(22);

        await harness.StepAsync(() => Eventually.TrueAsync(() => !Processes.Alive(pid), "the destroyed guest's worker exits"));
        await Eventually.TrueAsync(() => !harness.Supervisor.WorkerPids().ContainsKey(22) && harness.Supervisor.Snapshot().Guests.Count == 0, "the supervisor forgot the guest");
        await Eventually.TrueAsync(() => sim.GoneAsync("/local/domain/0/backend/vbd/22"), "backend/vbd/22 removed");
        Assert.True(await sim.GoneAsync("/local/domain/0/error/backend/vbd/22"));
        Assert.True(await sim.GoneAsync("/local/domain/22"));
        Assert.False(harness.Supervisor.Completion.IsFaulted);
    }
}
