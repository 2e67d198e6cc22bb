namespace XenBackends.Native.Xen;

/// <summary>
/// What this machine offers the backends, for a clear startup diagnostic: the Xen device nodes,
/// xenfs, whether this is the control domain (xenstore is the XenStore client's to diagnose), and whether the libraries load with every function
/// the backends call. Only looks; opens nothing.
/// </summary>
public static class XenEnvironment
{
    public static XenEnvironmentReport Describe() =>
        Describe("/", [(XenLibrary.Gnttab, LibXenGnttab.Exports), (XenLibrary.Evtchn, LibXenEvtchn.Exports)]);

    /// <param name="root">Prefix for every absolute path looked at, so a test can stage a fake /dev and /proc.</param>
    internal static XenEnvironmentReport Describe(
        string root, IReadOnlyList<(XenLibrary Library, IReadOnlyList<string> Exports)> libraries)
    {
        string Under(string path) => Path.Join(root, path);

        var devices = new[] { XenDevicePaths.Gntdev, XenDevicePaths.Evtchn }
            .Select(path => new XenDeviceStatus(path, Path.Exists(Under(path))))
            .ToList();

        string? hypervisor = ReadTrimmed(Under(XenDevicePaths.HypervisorType));
        string? capabilities = ReadTrimmed(Under(XenDevicePaths.ProcXenCapabilities));

        var libs = libraries
            .Select(l => new XenLibraryStatus(l.Library, l.Library.Probe(l.Exports)))
            .ToList();

        return new XenEnvironmentReport(
            Hypervisor: hypervisor,
            XenfsMounted: capabilities is not null,
            IsControlDomain: capabilities?.Contains("control_d", StringComparison.Ordinal) ?? false,
            Devices: devices,
            Libraries: libs);
    }

    private static string? ReadTrimmed(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

public sealed record XenDeviceStatus(string Path, bool Present);

/// <param name="Problem">Null when the library loads and exports everything; otherwise why not, with the fix.</param>
public sealed record XenLibraryStatus(XenLibrary Library, string? Problem)
{
    public bool Usable => Problem is null;
}

/// <param name="Hypervisor">The content of /sys/hypervisor/type ("xen" under Xen), or null when absent.</param>
public sealed record XenEnvironmentReport(
    string? Hypervisor,
    bool XenfsMounted,
    bool IsControlDomain,
    IReadOnlyList<XenDeviceStatus> Devices,
    IReadOnlyList<XenLibraryStatus> Libraries)
{
    /// <summary>Everything that stops backends from running here, each with what to do; empty when ready.</summary>
    public IReadOnlyList<string> Problems
    {
        get
        {
            var problems = new List<string>();
            if (Hypervisor != "xen")
                problems.Add(Hypervisor is null
                    ? "not running under Xen (no /sys/hypervisor/type)"
                    : $"the hypervisor is {Hypervisor}, not xen");
            if (!XenfsMounted)
                problems.Add("xenfs is not mounted on /proc/xen (mount -t xenfs xenfs /proc/xen)");
            else if (!IsControlDomain)
                problems.Add("this domain is not the control domain (no control_d in /proc/xen/capabilities)");
            foreach (var device in Devices.Where(d => !d.Present))
                problems.Add($"{device.Path} not found (is the {ModuleFor(device.Path)} module loaded?)");
            foreach (var library in Libraries.Where(l => !l.Usable))
                problems.Add(library.Problem!);
            return problems;
        }
    }

    public bool CanRunBackends => Problems.Count == 0;

    public override string ToString()
    {
        var problems = Problems;
        return problems.Count == 0
            ? "Xen dom0 ready: " + string.Join(", ", Devices.Select(d => d.Path).Concat(Libraries.Select(l => l.Library.Soname)))
            : "Xen backends cannot run here:" + string.Concat(problems.Select(p => Environment.NewLine + "  - " + p));
    }

    private static string ModuleFor(string devicePath) => devicePath switch
    {
        XenDevicePaths.Gntdev => "xen-gntdev",
        XenDevicePaths.Evtchn => "xen-evtchn",
        _ => "Xen",
    };
}
