using XenBackends.SimulatedHost.Toolstack;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Tests.Guest;

/// <summary>
/// The nodes and permissions the simulated toolstack writes, compared with libxl 4.17
/// (libxl_create.c libxl__domain_make, libxl_disk.c device_disk_add, libxl_nic.c
/// libxl__set_xenstore_nic, libxl_device.c libxl__device_generic_add) and the lab's recorded values.
/// </summary>
public sealed class ToolstackTests
{
    private const ushort Domid = 5;
    private static readonly TimeSpan Bound = SimulatedHostHarness.Bound;

    [Fact]
    public async Task Create_domain_writes_libxls_home_nodes_with_its_permissions_and_fires_introduce()
    {
        await using var h = await SimulatedHostHarness.StartAsync();
        await using var xs = await h.ConnectDom0Async();
        await xs.WatchAsync("@introduceDomain", "intro");
        using var cts = new CancellationTokenSource(Bound);
        Assert.Equal("@introduceDomain", (await xs.WatchEvents.ReadAsync(cts.Token)).Path); // the initial event

        var guest = await h.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "guest-a"));
        Assert.Equal("@introduceDomain", (await xs.WatchEvents.ReadAsync(cts.Token)).Path);
        Assert.True(h.Server.IsDomainIntroduced(Domid));

        string dom = "/local/domain/5";
        Assert.Equal("n0 r5", await XsDump.PermsAsync(xs, dom));
        foreach (string ro in new[] { "device", "control", "cpu", "memory" })
            Assert.Equal("n0 r5", await XsDump.PermsAsync(xs, $"{dom}/{ro}"));
        foreach (string rw in new[] { "control/shutdown", "control/feature-poweroff", "control/feature-reboot", "control/feature-suspend", "control/sysrq", "device/suspend/event-channel", "data", "drivers", "feature", "attr", "error" })
            Assert.Equal("n5", await XsDump.PermsAsync(xs, $"{dom}/{rw}"));
        Assert.Equal("guest-a", await xs.ReadStringAsync($"{dom}/name"));
        Assert.Equal("5", await xs.ReadStringAsync($"{dom}/domid"));
        string vm = await xs.ReadStringAsync($"{dom}/vm");
        Assert.Equal($"/vm/{guest.Uuid:D}", vm);
        Assert.Equal("n0 r5", await XsDump.PermsAsync(xs, vm));
        Assert.Equal("n0", await XsDump.PermsAsync(xs, "/libxl/5"));
        Assert.Equal("pv", await xs.ReadStringAsync("/libxl/5/type"));

        // The guest itself may write only where libxl let it.
        await using var asGuest = await guest.OpenXenStoreAsync();
        await asGuest.WriteAsync($"{dom}/data/x", "1");
        var denied = await Assert.ThrowsAsync<XenStoreErrorException>(() => asGuest.WriteAsync($"{dom}/name", "evil"));
        Assert.Equal(XsErrno.EACCES, denied.ErrnoName);
    }

    [Fact]
    public async Task Add_disk_writes_the_phy_vbd_nodes_of_libxl_with_its_permissions_then_waits_and_runs_the_script()
    {
        await using var h = await SimulatedHostHarness.StartAsync();
        await h.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "guest-a"));
        await using var xs = await h.ConnectDom0Async();
        var add = h.Toolstack.AddDiskAsync(Domid, new DiskSpec("xvda", "/img") { Script = "/path/to/our-hotplug" });

        // libxl waits for InitWait: until a backend says so, nothing else happens.
        string be = "/local/domain/0/backend/vbd/5/51712";
        await WaitForNodeAsync(h, be + "/state");
        Assert.False(add.IsCompleted);
        Assert.Empty(h.Hotplug.Runs);

        var backend = await XsDump.TreeAsync(xs, be);
        Assert.Equal(new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["bootable"] = "1", ["dev"] = "xvda", ["device-type"] = "disk", ["discard-enable"] = "1",
            ["frontend"] = "/local/domain/5/device/vbd/51712", ["frontend-id"] = "5", ["mode"] = "w", ["online"] = "1",
            ["params"] = "/img", ["removable"] = "0", ["script"] = "/path/to/our-hotplug", ["specification"] = "xen",
            ["state"] = "1", ["type"] = "phy",
        }, backend);
        var frontend = await XsDump.TreeAsync(xs, "/local/domain/5/device/vbd/51712");
        Assert.Equal(new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["backend"] = be, ["backend-id"] = "0", ["device-type"] = "disk", ["protocol"] = "x86_64-abi",
            ["state"] = "1", ["trusted"] = "1", ["virtual-device"] = "51712",
        }, frontend);
        Assert.Equal("n0 r5", await XsDump.PermsAsync(xs, be));
        Assert.Equal("n0 r5", await XsDump.PermsAsync(xs, be + "/params"));
        Assert.Equal("n5 r0", await XsDump.PermsAsync(xs, "/local/domain/5/device/vbd/51712"));
        Assert.Equal("n5 r0", await XsDump.PermsAsync(xs, "/local/domain/5/device/vbd/51712/state"));
        Assert.Equal("n5 r0", await XsDump.PermsAsync(xs, "/local/domain/5/device/vbd/51712/backend"));
        Assert.Equal(be, await xs.ReadStringAsync("/libxl/5/device/vbd/51712/backend"));
        Assert.Equal("/img", await xs.ReadStringAsync("/libxl/5/device/vbd/51712/params"));

        await xs.WriteAsync(be + "/state", "2");
        var disk = await add.WaitAsync(Bound);
        var run = Assert.Single(h.Hotplug.Runs);
        Assert.Equal(("vbd", "add", "/path/to/our-hotplug"), (run.Kind, run.Action, run.Script));
        Assert.Equal("backend/vbd/5/51712", run.Environment["XENBUS_PATH"]);
        Assert.Equal("backend", run.Environment["XENBUS_BASE_PATH"]);
        Assert.Equal("vbd", run.Environment["XENBUS_TYPE"]);
        Assert.Null(await xs.TryReadStringAsync(be + "/hotplug-status"));
        Assert.Equal(51712, disk.DevId);
    }

    [Fact]
    public async Task Add_nic_writes_the_vif_nodes_of_libxl_and_the_vif_bridge_run_marks_hotplug_connected()
    {
        await using var h = await SimulatedHostHarness.StartAsync();
        await h.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "guest-a"));
        await using var xs = await h.ConnectDom0Async();
        var add = h.Toolstack.AddNicAsync(Domid, new NicSpec { Mac = "00:16:3e:00:00:01" });
        string be = "/local/domain/0/backend/vif/5/0";
        await WaitForNodeAsync(h, be + "/state");

        Assert.Equal(new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["bridge"] = "xenbr0", ["frontend"] = "/local/domain/5/device/vif/0", ["frontend-id"] = "5", ["handle"] = "0",
            ["hotplug-status"] = "", ["mac"] = "00:16:3e:00:00:01", ["online"] = "1", ["script"] = "/etc/xen/scripts/vif-bridge",
            ["state"] = "1", ["type"] = "vif",
        }, await XsDump.TreeAsync(xs, be));
        Assert.Equal(new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["backend"] = be, ["backend-id"] = "0", ["handle"] = "0", ["mac"] = "00:16:3e:00:00:01", ["mtu"] = "1500",
            ["state"] = "1", ["trusted"] = "1",
        }, await XsDump.TreeAsync(xs, "/local/domain/5/device/vif/0"));
        Assert.Equal("n0 r5", await XsDump.PermsAsync(xs, be));
        Assert.Equal("n5 r0", await XsDump.PermsAsync(xs, "/local/domain/5/device/vif/0/mac"));
        // mtu is libxl's ro_front: owned by the backend domain so the guest cannot change it.
        Assert.Equal("n0 r5", await XsDump.PermsAsync(xs, "/local/domain/5/device/vif/0/mtu"));

        await xs.WriteAsync(be + "/state", "2");
        await add.WaitAsync(Bound);
        var run = Assert.Single(h.Hotplug.Runs);
        Assert.Equal(("vif", "online"), (run.Kind, run.Action));
        Assert.Equal("vif5.0", run.Environment["vif"]);
        Assert.Equal("connected", await xs.ReadStringAsync(be + "/hotplug-status"));

        // A second vif takes the next devid.
        var second = h.Toolstack.AddNicAsync(Domid, new NicSpec());
        await WaitForNodeAsync(h, "/local/domain/0/backend/vif/5/1/state");
        await xs.WriteAsync("/local/domain/0/backend/vif/5/1/state", "2");
        Assert.Equal(1, (await second.WaitAsync(Bound)).DevId);
    }

    [Fact]
    public async Task Add_times_out_like_libxl_when_no_backend_reaches_initwait()
    {
        var host = new SimulatedXenHost();
        var server = new XenBackends.SimulatedHost.XenStore.XenStoreServer();
        await using var toolstack = await SimulatedToolstack.StartAsync(host, server, new ToolstackOptions { InitTimeout = TimeSpan.FromMilliseconds(200) });
        try
        {
            await toolstack.CreateDomainAsync(new DomainSpec(Domid, "guest-a"));
            var error = await Assert.ThrowsAsync<DeviceStateTimeoutException>(() => toolstack.AddDiskAsync(Domid, new DiskSpec("xvdb", "/img")));
            Assert.Equal(XenbusState.Initialising, error.Last);
        }
        finally
        {
            await server.DisposeAsync();
            host.Dispose();
        }
    }

    [Theory]
    [InlineData("xvda", 51712)]
    [InlineData("xvdb", 51728)]
    [InlineData("xvda1", 51713)]
    [InlineData("xvdp15", 51967)]
    [InlineData("xvdq", 268439552)]
    [InlineData("xvdaa", 268442112)]
    [InlineData("d0p0", 51712)]
    [InlineData("hda", 768)]
    [InlineData("hdc", 5632)]
    [InlineData("sda", 2048)]
    [InlineData("51712", 51712)]
    public void Vdev_names_map_to_xen_vbd_interface_numbers(string vdev, int devid) =>
        Assert.Equal(devid, VirtualDiskNumber.Parse(vdev));

    [Theory]
    [InlineData("xvd")]
    [InlineData("xvda01")]
    [InlineData("vda")]
    [InlineData("hde")]
    public void Invalid_vdev_names_are_refused(string vdev) => Assert.False(VirtualDiskNumber.TryParse(vdev, out _));

    /// <summary>Its own connection: a WatchRouter keeps reading its client's events until that client closes.</summary>
    internal static async Task WaitForNodeAsync(SimulatedHostHarness h, string path)
    {
        await using var xs = await h.ConnectDom0Async();
        await using var router = new WatchRouter(xs);
        await using var watch = await router.SubscribeAsync(path);
        using var cts = new CancellationTokenSource(Bound);
        while (await xs.TryReadStringAsync(path) is null)
            await watch.WaitAsync(cts.Token);
    }
}
