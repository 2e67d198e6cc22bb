using System.Runtime.InteropServices;

namespace XenBackends.Native.Xen;

/// <summary>
/// One Xen user-space library as the backends load it: by soname (the unversioned .so link only
/// ships with libxen-dev), together with the Debian package an operator installs when it is missing.
/// </summary>
public sealed record XenLibrary(string Soname, string DebianPackage)
{
    public static XenLibrary Gnttab { get; } = new(LibXenGnttab.Soname, "libxengnttab1");

    public static XenLibrary Evtchn { get; } = new(LibXenEvtchn.Soname, "libxenevtchn1");

    /// <summary>The install hint used in every "library missing" error.</summary>
    public string InstallHint => $"install the Debian package {DebianPackage} (apt-get install {DebianPackage})";

    /// <summary>
    /// Loads the library the way the P/Invoke stubs will and checks that it exports every function
    /// named in <paramref name="exports"/>; returns null when it does, otherwise why not.
    /// </summary>
    public string? Probe(IEnumerable<string> exports)
    {
        if (!NativeLibrary.TryLoad(Soname, out nint handle))
            return $"{Soname} cannot be loaded: {InstallHint}";
        try
        {
            var missing = exports.Where(name => !NativeLibrary.TryGetExport(handle, name, out _)).ToList();
            return missing.Count == 0
                ? null
                : $"{Soname} lacks {string.Join(", ", missing)}: it is older than this service needs; upgrade {DebianPackage}";
        }
        finally
        {
            NativeLibrary.Free(handle);
        }
    }

    /// <summary>The error for a library the P/Invoke layer could not bind.</summary>
    internal XenUnavailableException Unavailable(Exception cause) => cause switch
    {
        EntryPointNotFoundException =>
            new XenUnavailableException($"{Soname} is too old (a function is missing): upgrade {DebianPackage}", cause),
        _ => new XenUnavailableException($"{Soname} cannot be loaded: {InstallHint}", cause),
    };
}
