using XenBackends.Native.Xen;

namespace XenBackends.Native.Tests.Xen;

public sealed class XenEnvironmentTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("xen-root-").FullName;
    private readonly (XenLibrary, IReadOnlyList<string>)[] _realLibraries =
        [(XenLibrary.Gnttab, ["xengnttab_open"]), (XenLibrary.Evtchn, ["xenevtchn_open"])];

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Stage(string path, string content = "")
    {
        string full = Path.Join(_root, path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
    }

    [Fact]
    public void A_staged_dom0_is_ready()
    {
        Stage(XenDevicePaths.Gntdev);
        Stage(XenDevicePaths.Evtchn);
        Stage(XenDevicePaths.HypervisorType, "xen\n");
        Stage(XenDevicePaths.ProcXenCapabilities, "control_d\n");

        var report = XenEnvironment.Describe(_root, _realLibraries);

        Assert.Equal("xen", report.Hypervisor);
        Assert.True(report.IsControlDomain);
        Assert.All(report.Devices, d => Assert.True(d.Present));
        Assert.Empty(report.Problems);
        Assert.True(report.CanRunBackends);
        Assert.StartsWith("Xen dom0 ready: /dev/xen/gntdev, /dev/xen/evtchn", report.ToString());
    }

    [Fact]
    public void A_machine_without_xen_lists_each_missing_piece_with_its_fix()
    {
        var absent = new XenLibrary("libxen-absent-for-test.so.9", "libxenabsent9");
        var report = XenEnvironment.Describe(_root, [(absent, [])]);

        Assert.False(report.CanRunBackends);
        Assert.Equal(
            [
                "not running under Xen (no /sys/hypervisor/type)",
                "xenfs is not mounted on /proc/xen (mount -t xenfs xenfs /proc/xen)",
                "/dev/xen/gntdev not found (is the xen-gntdev module loaded?)",
                "/dev/xen/evtchn not found (is the xen-evtchn module loaded?)",
                "libxen-absent-for-test.so.9 cannot be loaded: install the Debian package libxenabsent9 (apt-get install libxenabsent9)",
            ],
            report.Problems);
        Assert.StartsWith("Xen backends cannot run here:", report.ToString());
    }

    [Fact]
    public void A_domU_is_told_it_is_not_the_control_domain()
    {
        Stage(XenDevicePaths.HypervisorType, "xen\n");
        Stage(XenDevicePaths.ProcXenCapabilities, "");
        var report = XenEnvironment.Describe(_root, _realLibraries);
        Assert.False(report.IsControlDomain);
        Assert.Contains("this domain is not the control domain (no control_d in /proc/xen/capabilities)", report.Problems);
    }

    [Fact]
    public void The_real_probe_agrees_with_this_machine()
    {
        var report = XenEnvironment.Describe();
        Assert.Equal(Path.Exists("/dev/xen/gntdev"), report.Devices.Single(d => d.Path == "/dev/xen/gntdev").Present);
        Assert.Equal(Path.Exists("/dev/xen/evtchn"), report.Devices.Single(d => d.Path == "/dev/xen/evtchn").Present);
        // The libraries are a test prerequisite (scripts/test installs them), so they must be usable.
        Assert.All(report.Libraries, l => Assert.True(l.Usable, l.Problem));
    }
}
