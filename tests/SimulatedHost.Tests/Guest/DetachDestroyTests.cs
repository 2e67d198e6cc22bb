using XenBackends.Rings.Blkif;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Tests.Guest;

/// <summary>xl block-detach / network-detach / destroy: the handshake backends see and that nothing is left behind.</summary>
public sealed class DetachDestroyTests
{
    private const ushort Domid = 11;
    private static readonly TimeSpan Bound = SimulatedHostHarness.Bound;

    [Fact]
    public async Task Block_detach_closes_through_the_frontend_and_removes_every_node()
    {
        await using var h = await SimulatedHostHarness.StartAsync();
        var guest = await h.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "g"));
        var backTask = TestBlkback.StartAsync(h, Domid, 51712);
        var disk = await h.Toolstack.AddDiskAsync(Domid, new DiskSpec("xvda", "/img"));
        await using var back = await backTask;
        await using var front = await SimulatedBlkfront.AttachAsync(guest, disk.DevId);
        await front.WaitConnectedAsync(Bound);
        Assert.Equal(BlkifRsp.Okay, await front.WriteAsync(0, new byte[512]));

        await h.Toolstack.DetachDiskAsync(disk).WaitAsync(Bound);

        Assert.Equal(XenbusState.Closed, front.State);
        Assert.Null(back.Fault);
        await using var xs = await h.ConnectDom0Async();
        Assert.Null(await xs.TryReadStringAsync(disk.BackendPath));
        Assert.Null(await xs.TryReadStringAsync(disk.FrontendPath));
        Assert.Null(await xs.TryReadStringAsync(disk.LibxlPath));
        // libxl__xs_path_cleanup drops parents it emptied, and no further.
        Assert.Null(await xs.TryReadStringAsync("/local/domain/0/backend"));
        Assert.Null(await xs.TryReadStringAsync("/local/domain/11/device/vbd"));
        Assert.NotNull(await xs.TryReadStringAsync("/local/domain/11/device"));
        Assert.Equal(["add", "remove"], h.Hotplug.Runs.Select(r => r.Action).ToArray());
    }

    [Fact]
    public async Task Network_detach_of_an_unresponsive_backend_falls_back_to_forced_removal_after_the_timeout()
    {
        await using var h = await SimulatedHostHarness.StartAsync(destroyTimeout: TimeSpan.FromMilliseconds(300));
        await h.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "g"));
        await using var xs = await h.ConnectDom0Async();
        var add = h.Toolstack.AddNicAsync(Domid, new NicSpec());
        await ToolstackTests.WaitForNodeAsync(h, "/local/domain/0/backend/vif/11/0/state");
        await xs.WriteAsync("/local/domain/0/backend/vif/11/0/state", "2");
        var nic = await add.WaitAsync(Bound);
        await xs.WriteAsync(nic.BackendPath + "/state", "4"); // a backend that then never answers

        await h.Toolstack.DetachNicAsync(nic).WaitAsync(Bound);

        Assert.Null(await xs.TryReadStringAsync(nic.BackendPath));
        Assert.Null(await xs.TryReadStringAsync(nic.FrontendPath));
        Assert.Equal(["online", "offline"], h.Hotplug.Runs.Select(r => r.Action).ToArray());
    }

    [Fact]
    public async Task Destroy_halts_the_guest_closes_backends_removes_all_nodes_and_fires_release()
    {
        await using var h = await SimulatedHostHarness.StartAsync();
        var guest = await h.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "g"));
        var blkTask = TestBlkback.StartAsync(h, Domid, 51712);
        var disk = await h.Toolstack.AddDiskAsync(Domid, new DiskSpec("xvda", "/img"));
        await using var blk = await blkTask;
        var netTask = TestNetback.StartAsync(h, Domid, 0);
        var nic = await h.Toolstack.AddNicAsync(Domid, new NicSpec());
        await using var net = await netTask;
        await using var blkfront = await SimulatedBlkfront.AttachAsync(guest, disk.DevId);
        await using var netfront = await SimulatedNetfront.AttachAsync(guest, nic.DevId);
        await blkfront.WaitConnectedAsync(Bound);
        await netfront.WaitConnectedAsync(Bound);
        // The test destroys a guest whose devices are fully up. Netfront is Connected before netback has
        // even mapped its rings (netback connects on frontend Connected, after hotplug-status), and the
        // halt below revokes the guest's grants: without this wait netback's ring mapping can land after
        // the halt and fail. (Blkfront only goes Connected after blkback did, so it needs no such wait.)
        await net.WaitConnectedAsync(Bound);

        await using var xs = await h.ConnectDom0Async();
        await xs.WatchAsync("@releaseDomain", "release");
        using var cts = new CancellationTokenSource(Bound);
        Assert.Equal("@releaseDomain", (await xs.WatchEvents.ReadAsync(cts.Token)).Path); // initial event
        var stateBefore = new[] { blkfront.State, netfront.State };

        await h.Toolstack.DestroyDomainAsync(Domid).WaitAsync(Bound);

        Assert.Equal("@releaseDomain", (await xs.WatchEvents.ReadAsync(cts.Token)).Path);
        Assert.False(h.Server.IsDomainIntroduced(Domid));
        // A destroyed guest writes nothing: its frontends stay where they were; the backends closed on their own.
        Assert.Equal(stateBefore, new[] { blkfront.State, netfront.State });
        Assert.Null(blk.Fault);
        Assert.Null(net.Fault);
        Assert.Null(await xs.TryReadStringAsync("/local/domain/11"));
        Assert.Null(await xs.TryReadStringAsync("/libxl/11"));
        Assert.Null(await xs.TryReadStringAsync($"/vm/{guest.Uuid:D}"));
        Assert.Null(await xs.TryReadStringAsync("/local/domain/0/backend"));
        Assert.Throws<KeyNotFoundException>(() => h.Host.GetDomain(Domid));
        await Assert.ThrowsAsync<InvalidOperationException>(() => blkfront.ReadAsync(0, new byte[512]));
        await Assert.ThrowsAsync<InvalidOperationException>(() => netfront.SendAsync(new byte[60]));
    }
}
