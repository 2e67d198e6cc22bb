using XenBackends.Backend.Block;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.XenStore;
using XenBackends.Xenbus;
using Nodes = System.Collections.Generic.SortedDictionary<string, (string Value, string Perms)>;

namespace XenBackends.SimulatedHost.Tests.Guest;

/// <summary>
/// The simulated toolstack against what real Xen 4.17 libxl wrote in the lab (lab/reference/libxl-nodes.txt):
/// the same guest shape, the same sections dumped, compared path by path, value by value and permission
/// list by permission list. Anything the simulation does differently must be listed here as a deviation.
/// </summary>
public sealed class LibxlGroundTruthTests
{
    private static readonly TimeSpan Bound = SimulatedHostHarness.Bound;

    /// <summary>The lab's loop device and the test's image file are the same disk seen from two hosts.</summary>
    private const string TargetToken = "<target>";

    // Keys the hotplug scripts write into a backend directory (block's write_dev and success,
    // vif-bridge's success): toolstack-side writes, unlike the drivers' negotiation keys.
    private static readonly string[] ScriptKeys = ["hotplug-status", "physical-device", "physical-device-path"];

    [Fact]
    public async Task Nodes_libxl_writes_before_any_backend_runs_match_the_lab_recording()
    {
        var recorded = LibxlGroundTruth.Load().Where(n => n.Phase == "libxl").ToList();
        await using var h = await SimulatedHostHarness.StartAsync();
        await using var xs = await h.ConnectDom0Async();
        var expected = new Nodes(StringComparer.Ordinal);
        var actual = new Nodes(StringComparer.Ordinal);

        // One guest per device kind, as the lab recorded them (libxl adds vifs only once disks are
        // connected, so an unserved vbd would hide the vif). Test domids differ from the lab's on
        // purpose: the comparison must not depend on them.
        foreach (var (kind, simDomid) in new[] { ("vbd", (ushort)21), ("vif", (ushort)22) })
        {
            var nodes = recorded.Where(n => n.Section.EndsWith("_" + kind, StringComparison.Ordinal)).ToList();
            Assert.Equal(["backend_" + kind, "frontend_" + kind, "libxl_" + kind], nodes.Select(n => n.Section).Distinct().Order(StringComparer.Ordinal));
            ushort labDomid = Assert.Single(nodes.Select(n => n.Domid).Distinct());

            await h.Toolstack.CreateDomainAsync(new DomainSpec(simDomid, "probe-" + kind));
            using var cancel = new CancellationTokenSource();
            Task add = kind == "vbd"
                ? h.Toolstack.AddDiskAsync(simDomid, LabDisk(recorded), cancel.Token)
                : h.Toolstack.AddNicAsync(simDomid, LabNic(recorded), cancel.Token);
            // The lab snapshotted while libxl waited for an InitWait that never came; the state node
            // is written in the same transaction as every other node, so its presence means all are there.
            string backendRoot = Denormalise(LibxlGroundTruth.SectionRoot(nodes.Where(n => n.Section == "backend_" + kind)), labDomid, simDomid);
            await ToolstackTests.WaitForNodeAsync(h, backendRoot + "/state");
            Assert.False(add.IsCompleted);

            foreach (var section in nodes.GroupBy(n => n.Section))
            {
                foreach (var n in section)
                    expected.Add(LibxlGroundTruth.NormalisePath(n.Path, n.Domid), Normalise(n.Path, n.Value, n.Perms, n.Domid));
                string root = Denormalise(LibxlGroundTruth.SectionRoot(section), labDomid, simDomid);
                foreach (var (path, value, perms) in await LibxlGroundTruth.DumpAsync(xs, root))
                    actual.Add(LibxlGroundTruth.NormalisePath(path, simDomid), Normalise(path, value, perms, simDomid));
            }

            // Nothing will serve the device: end libxl's wait instead of letting it time out.
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => add);
        }

        AssertOnly(ExpectedLibxlDeviations, LibxlGroundTruth.Diff(expected, actual));
    }

    /// <summary>Documented in src/SimulatedHost/Toolstack/DEVIATIONS.md; everything else must match.</summary>
    private static readonly string[] ExpectedLibxlDeviations = [];

    [Fact]
    public async Task Toolstack_and_hotplug_nodes_after_connection_match_the_lab_recording()
    {
        var all = LibxlGroundTruth.Load();
        var libxlPhase = all.Where(n => n.Phase == "libxl").ToList();
        var recorded = all.Where(n => n.Phase == "connected").ToList();
        ushort labDomid = Assert.Single(recorded.Select(n => n.Domid).Distinct());
        Assert.Equal(["backend_vbd", "backend_vif", "dir", "frontend_vbd", "frontend_vif"], recorded.Select(n => n.Section).Distinct().Order(StringComparer.Ordinal));
        string labTarget = libxlPhase.Single(n => n.Section == "backend_vbd" && n.Path.EndsWith("/params", StringComparison.Ordinal)).Value;

        // Only what libxl and its hotplug scripts write is the toolstack's: the keys of the libxl-alone
        // recording plus the scripts' keys. The rest (feature-*, ring-ref, sectors, ...) is negotiation
        // between Linux's blkback/netback and the guest's drivers; the project's own backends advertise
        // their own sets, which their tests check.
        var toolstackKeys = libxlPhase
            .GroupBy(n => n.Section)
            .ToDictionary(g => g.Key, g => g.Select(n => KeyOf(n.Path)).Concat(g.Key.StartsWith("backend_", StringComparison.Ordinal) ? ScriptKeys : []).ToHashSet(StringComparer.Ordinal));
        bool IsToolstackNode(string section, string path) => section == "dir" || toolstackKeys[section].Contains(KeyOf(path));

        const ushort SimDomid = 23;
        await using var h = await SimulatedHostHarness.StartAsync();
        await using var xs = await h.ConnectDom0Async();
        var guest = await h.Toolstack.CreateDomainAsync(new DomainSpec(SimDomid, "probe") { Pages = 32768, GrantEntries = 32768 });
        // The project's block backend needs a file it can open; the lab's disk was a 16 MiB loop device.
        string dir = Directory.CreateTempSubdirectory("xb-truth-").FullName;
        string image = Path.Combine(dir, "probe.img");
        await using (var f = File.Create(image))
            f.SetLength(16 << 20);

        // The real block backend, run the way the service runs it: one BackendLifecycle per device.
        await using var router = new WatchRouter(xs);
        using var grants = h.Host.CreateGrantMapper(0);
        await using var block = new BlockDevice(grants, () => h.Host.OpenEventChannels(0));
        using var stop = new CancellationTokenSource();
        Task served = Task.CompletedTask;
        try
        {
            var disk = LabDisk(libxlPhase) with { Target = image };
            var addDisk = h.Toolstack.AddDiskAsync(SimDomid, disk, stop.Token);
            var vbdPath = new DevicePath(0, "vbd", SimDomid, (uint)VirtualDiskNumber.Parse(disk.Vdev));
            await ToolstackTests.WaitForNodeAsync(h, vbdPath.Backend + "/state");
            var lifecycle = new BackendLifecycle(await XenbusDevice.OpenAsync(router, vbdPath, stop.Token), block);
            served = Task.Run(() => lifecycle.RunAsync(stop.Token));
            await addDisk.WaitAsync(Bound);
            await using var blk = await SimulatedBlkfront.AttachAsync(guest, (int)vbdPath.DevId);
            await blk.WaitConnectedAsync(Bound);

            // Linux's netback needs a tap and CAP_NET_ADMIN; the vif side is served by the test netback,
            // which is enough here: only the toolstack's and vif-bridge's nodes are compared.
            var nic = LabNic(libxlPhase);
            var netbackStart = TestNetback.StartAsync(h, SimDomid, 0);
            await h.Toolstack.AddNicAsync(SimDomid, nic);
            await using var netback = await netbackStart;
            await using var net = await SimulatedNetfront.AttachAsync(guest, 0);
            await net.WaitConnectedAsync(Bound);
            await net.WaitUntilAsync(() => net.BackendState == XenbusState.Connected, Bound, "backend connected");

            var expected = new Nodes(StringComparer.Ordinal);
            var actual = new Nodes(StringComparer.Ordinal);
            foreach (var section in recorded.GroupBy(n => n.Section))
            {
                foreach (var n in section.Where(n => IsToolstackNode(n.Section, n.Path)))
                    expected.Add(LibxlGroundTruth.NormalisePath(n.Path, labDomid), Normalise(n.Path, n.Value == labTarget ? TargetToken : n.Value, n.Perms, labDomid));
                if (section.Key == "dir")
                {
                    // The directories above the devices: read exactly the recorded ones.
                    foreach (var n in section)
                    {
                        string path = Denormalise(n.Path, labDomid, SimDomid);
                        if (await xs.TryReadStringAsync(path) is { } value)
                            actual.Add(LibxlGroundTruth.NormalisePath(path, SimDomid), Normalise(path, value, await LibxlGroundTruth.PermsAsync(xs, path), SimDomid));
                    }
                    continue;
                }
                string root = Denormalise(LibxlGroundTruth.SectionRoot(section), labDomid, SimDomid);
                foreach (var (path, value, perms) in await LibxlGroundTruth.DumpAsync(xs, root))
                    if (IsToolstackNode(section.Key, path))
                        actual.Add(LibxlGroundTruth.NormalisePath(path, SimDomid), Normalise(path, value == image ? TargetToken : value, perms, SimDomid));
            }

            AssertOnly(ExpectedConnectedDeviations, LibxlGroundTruth.Diff(expected, actual));
        }
        finally
        {
            await stop.CancelAsync();
            try { await served; } catch (OperationCanceledException) { }
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Documented in src/SimulatedHost/Toolstack/DEVIATIONS.md; everything else must match. The lab's
    /// target was a loop device, which the block script names by major:minor; the project's backend
    /// needs an image file here, and for a file the real script would first attach a loop device, which
    /// the simulation cannot hand out, so physical-device alone is absent.
    /// </summary>
    private static readonly string[] ExpectedConnectedDeviations =
    [
        "missing /local/domain/0/backend/vbd/<domid>/51712/physical-device = \"7:0\" (n0,r<domid>)",
    ];

    [Theory]
    [InlineData("7:0", "7:0")]
    [InlineData("259:17", "103:11")]
    public void Stock_block_script_names_a_device_in_hex_as_stat_does(string sysfs, string written) =>
        Assert.Equal(written, DefaultHotplugScripts.FormatPhysicalDevice(sysfs));

    /// <summary>The lab's disk: format=raw, vdev=xvda, access=rw, with the script and target libxl recorded.</summary>
    private static DiskSpec LabDisk(IReadOnlyList<RecordedNode> libxlPhase) =>
        new("xvda", RecordedValue(libxlPhase, "backend_vbd", "params"))
        {
            ReadWrite = true,
            Script = RecordedValue(libxlPhase, "backend_vbd", "script"),
        };

    /// <summary>The lab's vif: its fixed MAC and bridge; script left to libxl's default, as in the lab.</summary>
    private static NicSpec LabNic(IReadOnlyList<RecordedNode> libxlPhase) => new()
    {
        Mac = RecordedValue(libxlPhase, "backend_vif", "mac"),
        Bridge = RecordedValue(libxlPhase, "backend_vif", "bridge"),
    };

    private static string RecordedValue(IReadOnlyList<RecordedNode> nodes, string section, string key) =>
        nodes.Single(n => n.Section == section && KeyOf(n.Path) == key).Value;

    /// <summary>Fails with every difference spelled out in full (xunit would elide long collection items).</summary>
    private static void AssertOnly(string[] deviations, List<string> diffs)
    {
        if (!diffs.SequenceEqual(deviations, StringComparer.Ordinal))
            Assert.Fail("simulated toolstack vs lab/reference/libxl-nodes.txt:\n  "
                + string.Join("\n  ", diffs.DefaultIfEmpty("(no differences)"))
                + "\nallowed deviations:\n  " + string.Join("\n  ", deviations.DefaultIfEmpty("(none)")));
    }

    private static string KeyOf(string path) => path[(path.LastIndexOf('/') + 1)..];

    private static (string Value, string Perms) Normalise(string path, string value, string perms, ushort domid) =>
        (LibxlGroundTruth.NormaliseValue(path, value, domid), LibxlGroundTruth.NormalisePerms(perms, domid));

    /// <summary>A recorded path with the lab's domid turned into the test's.</summary>
    private static string Denormalise(string labPath, ushort labDomid, ushort simDomid) =>
        LibxlGroundTruth.NormalisePath(labPath, labDomid).Replace(LibxlGroundTruth.DomidToken, simDomid.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
}
