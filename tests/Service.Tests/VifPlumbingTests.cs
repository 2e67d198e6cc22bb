using XenBackends.Native;
using XenBackends.Service.Devices;

namespace XenBackends.Service.Tests;

/// <summary>When a vif counts as resumed and what is redone for it, without a kernel in the loop.</summary>
public sealed class VifPlumbingTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]          // libxl's value until the script ran: a first creation, the script's job
    [InlineData("error")]     // the script itself failed; libxl is reporting that, not us
    public void Nothing_is_redone_unless_the_script_already_ran(string? hotplugStatus) =>
        Assert.Null(VifPlumbing.ForResume(hotplugStatus, "/etc/xen/scripts/vif-bridge", "xenbr0", null));

    [Fact]
    public void A_resumed_vif_bridge_device_gets_mtu_then_bridge_then_up()
    {
        var plan = VifPlumbing.ForResume("connected", "/etc/xen/scripts/vif-bridge", "xenbr0", "9000")!;
        var links = new RecordingLinks();
        Assert.Empty(plan.Apply("vif3.0", links));
        Assert.Equal(["mtu vif3.0 9000", "addif xenbr0 vif3.0", "up vif3.0"], links.Calls);
    }

    [Fact]
    public void Without_bridge_or_mtu_keys_the_tap_is_only_brought_up()
    {
        var links = new RecordingLinks();
        Assert.Empty(VifPlumbing.ForResume("connected", null, null, null)!.Apply("vif3.0", links));
        Assert.Equal(["up vif3.0"], links.Calls);
    }

    [Fact]
    public void A_missing_bridge_is_named_and_the_tap_still_comes_up()
    {
        var links = new RecordingLinks { BridgeErrno = 19 };
        var problems = VifPlumbing.ForResume("connected", "vif-bridge", "xenbr9", null)!.Apply("vif3.0", links);
        Assert.Contains("bridge xenbr9 does not exist", Assert.Single(problems), StringComparison.Ordinal);
        Assert.Equal(["addif xenbr9 vif3.0", "up vif3.0"], links.Calls);
    }

    [Fact]
    public void Another_script_is_not_imitated_and_that_is_reported()
    {
        var links = new RecordingLinks();
        var problems = VifPlumbing.ForResume("connected", "/etc/xen/scripts/vif-route", "xenbr0", null)!.Apply("vif3.0", links);
        Assert.Contains("vif-route is not re-run", Assert.Single(problems), StringComparison.Ordinal);
        Assert.Equal(["up vif3.0"], links.Calls);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("67")]
    [InlineData("70000")]
    public void A_bad_mtu_key_is_reported_not_applied(string mtu)
    {
        var links = new RecordingLinks();
        var problems = VifPlumbing.ForResume("connected", "vif-bridge", "xenbr0", mtu)!.Apply("vif3.0", links);
        Assert.Contains($"mtu '{mtu}'", Assert.Single(problems), StringComparison.Ordinal);
        Assert.Equal(["addif xenbr0 vif3.0", "up vif3.0"], links.Calls);
    }

    private sealed class RecordingLinks : VifPlumbing.ILinks
    {
        public List<string> Calls { get; } = [];
        public int BridgeErrno { get; init; }
        public void SetMtu(string name, int mtu) => Calls.Add($"mtu {name} {mtu}");
        public void AddToBridge(string bridge, string port)
        {
            Calls.Add($"addif {bridge} {port}");
            if (BridgeErrno != 0) throw new XenNativeException("ioctl(SIOCBRADDIF)", BridgeErrno, "test");
        }
        public void SetUp(string name) => Calls.Add($"up {name}");
    }
}
