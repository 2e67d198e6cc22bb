using System.Runtime.InteropServices;
using Tmds.Linux;
using XenBackends.Native.Xen;

namespace XenBackends.Native.Tests.Xen;

public class XenErrnoTests
{
    [Fact]
    public void Call_failure_carries_operation_errno_and_the_system_text()
    {
        var e = XenErrno.CallFailed("xenevtchn_notify", LibC.EBADF, "notifying through local port 3");
        Assert.Equal("xenevtchn_notify", e.Operation);
        Assert.Equal(LibC.EBADF, e.Errno);
        Assert.Equal(
            $"xenevtchn_notify failed: notifying through local port 3: {Marshal.GetPInvokeErrorMessage(LibC.EBADF)} (errno {LibC.EBADF})",
            e.Message);
    }

    [Fact]
    public void Event_ring_overflow_tells_the_operator_events_were_lost()
    {
        var e = XenErrno.CallFailed("xenevtchn_pending", LibC.EFBIG, "reading a pending port");
        Assert.Contains("events were lost", e.Message);
    }

    [Fact]
    public void Grant_failures_are_GrantExceptions_with_a_hint_for_exhaustion()
    {
        var e = XenErrno.GrantFailed("xengnttab_map_domain_grant_refs", LibC.ENOMEM, "mapping 1 grant(s)");
        Assert.IsType<GrantException>(e);
        Assert.Equal(GrantStatus.GeneralError, e.Status);
        Assert.Contains("too many grants mapped", e.Message);
    }

    [Fact]
    public void Open_failure_on_a_missing_node_says_not_a_dom0()
    {
        var e = XenErrno.OpenFailed("xenevtchn_open", "/dev/xen/evtchn", LibC.ENOENT);
        Assert.Contains("cannot open /dev/xen/evtchn", e.Message);
        Assert.Contains("not running in a Xen dom0", e.Message);
    }

    [Fact]
    public void Unknown_errnos_still_get_the_system_text_and_number()
    {
        var e = XenErrno.CallFailed("xenevtchn_unmask", LibC.EBUSY, "unmasking local port 1");
        Assert.EndsWith($"{Marshal.GetPInvokeErrorMessage(LibC.EBUSY)} (errno {LibC.EBUSY})", e.Message);
    }
}
