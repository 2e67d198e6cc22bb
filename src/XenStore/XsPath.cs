namespace XenBackends.XenStore;

/// <summary>
/// Client-side path checks, done before sending because a daemon either refuses these (EINVAL) or, for
/// oversized payloads, kills the whole connection.
/// </summary>
public static class XsPath
{
    /// <summary>XENSTORE_ABS_PATH_MAX.</summary>
    public const int AbsoluteMax = 3072;
    /// <summary>XENSTORE_REL_PATH_MAX: relative paths are resolved under /local/domain/&lt;domid&gt;.</summary>
    public const int RelativeMax = 2048;

    public const string IntroduceDomain = "@introduceDomain";
    public const string ReleaseDomain = "@releaseDomain";

    /// <summary>Null when valid, else why not.</summary>
    public static string? Problem(string? path, bool forWatch = false)
    {
        if (string.IsNullOrEmpty(path)) return "path is empty";
        if (path[0] == '@')
            return forWatch && (path == IntroduceDomain || path == ReleaseDomain)
                ? null
                : $"'{Shorten(path)}' is not a node path (only {IntroduceDomain} and {ReleaseDomain} may start with '@', and only for watches)";
        var absolute = path[0] == '/';
        var max = absolute ? AbsoluteMax : RelativeMax;
        if (path.Length > max) return $"path of {path.Length} characters exceeds the {(absolute ? "absolute" : "relative")} limit of {max}";
        foreach (var c in path)
            if (!IsAllowed(c)) return $"path '{Shorten(path)}' contains '{Printable(c)}' (allowed: A-Z a-z 0-9 - / _ @)";
        if (path.Contains("//", StringComparison.Ordinal)) return $"path '{Shorten(path)}' contains '//'";
        if (path.Length > 1 && path[^1] == '/') return $"path '{Shorten(path)}' ends with '/'";
        return null;
    }

    public static void Validate(string? path, bool forWatch = false, string parameterName = "path")
    {
        var problem = Problem(path, forWatch);
        if (problem is not null) throw new ArgumentException($"invalid xenstore path: {problem}", parameterName);
    }

    public static bool IsAllowed(char c) =>
        c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '/' or '_' or '@';

    private static string Printable(char c) => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString();

    private static string Shorten(string path) => path.Length <= 80 ? path : path[..80] + "...";
}
