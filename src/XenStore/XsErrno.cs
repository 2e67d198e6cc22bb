namespace XenBackends.XenStore;

/// <summary>
/// The xsd_errors table of xs_wire.h: the daemon replies with the errno NAME, never the number, so the
/// number shown to callers is the x86_64 Linux value for that name (0 when a daemon invents a name,
/// e.g. oxenstored's EQUOTA).
/// </summary>
public static class XsErrno
{
    private static readonly Dictionary<string, int> Numbers = new(StringComparer.Ordinal)
    {
        ["EINVAL"] = 22, ["EACCES"] = 13, ["EEXIST"] = 17, ["EISDIR"] = 21, ["ENOENT"] = 2,
        ["ENOMEM"] = 12, ["ENOSPC"] = 28, ["EIO"] = 5, ["ENOTEMPTY"] = 39, ["ENOSYS"] = 38,
        ["EROFS"] = 30, ["EBUSY"] = 16, ["EAGAIN"] = 11, ["EISCONN"] = 106, ["E2BIG"] = 7,
        ["EPERM"] = 1,
    };

    public const string EINVAL = "EINVAL", EACCES = "EACCES", EEXIST = "EEXIST", ENOENT = "ENOENT",
        ENOSPC = "ENOSPC", ENOSYS = "ENOSYS", EAGAIN = "EAGAIN", E2BIG = "E2BIG", EPERM = "EPERM",
        EBUSY = "EBUSY", EIO = "EIO", EISDIR = "EISDIR", ENOTEMPTY = "ENOTEMPTY";

    public static int NumberOf(string name) => Numbers.TryGetValue(name, out var number) ? number : 0;

    public static bool IsKnown(string name) => Numbers.ContainsKey(name);
}
