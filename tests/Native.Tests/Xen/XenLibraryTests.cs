using XenBackends.Native.Xen;

namespace XenBackends.Native.Tests.Xen;

public class XenLibraryTests
{
    [Fact]
    public void Libxengnttab_loads_by_soname_and_exports_every_bound_function()
    {
        Assert.Equal("libxengnttab.so.1", XenLibrary.Gnttab.Soname);
        string? problem = XenLibrary.Gnttab.Probe(LibXenGnttab.Exports);
        Assert.True(problem is null, problem);
    }

    [Fact]
    public void Libxenevtchn_loads_by_soname_and_exports_every_bound_function()
    {
        Assert.Equal("libxenevtchn.so.1", XenLibrary.Evtchn.Soname);
        string? problem = XenLibrary.Evtchn.Probe(LibXenEvtchn.Exports);
        Assert.True(problem is null, problem);
    }

    [Fact]
    public void Bound_functions_are_the_set_qemu_proves_sufficient()
    {
        Assert.Equal(
            ["xengnttab_close", "xengnttab_grant_copy", "xengnttab_map_domain_grant_refs", "xengnttab_map_grant_refs",
             "xengnttab_open", "xengnttab_set_max_grants", "xengnttab_unmap"],
            LibXenGnttab.Exports.Order(StringComparer.Ordinal));
        Assert.Equal(
            ["xenevtchn_bind_interdomain", "xenevtchn_close", "xenevtchn_fd", "xenevtchn_notify", "xenevtchn_open",
             "xenevtchn_pending", "xenevtchn_unbind", "xenevtchn_unmask"],
            LibXenEvtchn.Exports.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_library_that_cannot_load_is_reported_with_its_package()
    {
        var absent = new XenLibrary("libxen-absent-for-test.so.9", "libxenabsent9");
        Assert.Equal(
            "libxen-absent-for-test.so.9 cannot be loaded: install the Debian package libxenabsent9 (apt-get install libxenabsent9)",
            absent.Probe([]));
    }

    [Fact]
    public void A_library_missing_a_function_is_reported_as_too_old()
    {
        string? problem = XenLibrary.Gnttab.Probe(["xengnttab_open", "xengnttab_function_from_the_future"]);
        Assert.Equal(
            "libxengnttab.so.1 lacks xengnttab_function_from_the_future: it is older than this service needs; upgrade libxengnttab1",
            problem);
    }
}
