using System.Globalization;
using System.Text.RegularExpressions;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Tests.Guest;

/// <summary>One node of lab/reference/libxl-nodes.txt: what real libxl 4.17 (or, connected, the whole stack) left in xenstore.</summary>
internal sealed record RecordedNode(string Phase, string Section, ushort Domid, string Path, string Value, string Perms);

/// <summary>
/// Reads the ground truth the Xen lab recorded with <c>xenstore-ls -fp</c> and normalises it, and dumps of
/// the simulated store, to a domid-free form so the two can be compared key by key.
/// </summary>
internal static partial class LibxlGroundTruth
{
    public const string RelativePath = "lab/reference/libxl-nodes.txt";

    /// <summary>The placeholder every guest domid becomes: the lab's run and a test cannot pick the same ids.</summary>
    public const string DomidToken = "<domid>";

    // xs.<phase>.<section> <path> = "<value>"   (<perms>)
    [GeneratedRegex("""^xs\.(?<phase>[a-z]+)\.(?<section>[a-z_]+) (?<path>/\S*) = "(?<value>.*)"\s+\((?<perms>[^)]*)\)$""")]
    private static partial Regex NodeLine();

    [GeneratedRegex(@"^xs\.(?<phase>[a-z]+)\.domid (?<domid>\d+)$")]
    private static partial Regex DomidLine();

    [GeneratedRegex(@"^(?<letter>[nrwb])(?<domid>\d+)$")]
    private static partial Regex PermEntry();

    /// <summary>The repository root: the first ancestor of the test's output folder holding Backends.sln.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Backends.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"no Backends.sln above {AppContext.BaseDirectory}: the ground-truth test must run from a build inside the repository");
    }

    public static IReadOnlyList<RecordedNode> Load()
    {
        string file = System.IO.Path.Combine(RepositoryRoot(), RelativePath);
        if (!File.Exists(file))
            throw new FileNotFoundException($"the Xen lab's ground truth {RelativePath} is missing (lab/host/update-reference.sh records it)", file);
        var nodes = new List<RecordedNode>();
        var domids = new Dictionary<string, ushort>(StringComparer.Ordinal);
        foreach (string line in File.ReadLines(file))
        {
            if (DomidLine().Match(line) is { Success: true } d)
            {
                // Each "domid" line starts the records of a new guest in that phase.
                domids[d.Groups["phase"].Value] = ushort.Parse(d.Groups["domid"].Value, CultureInfo.InvariantCulture);
                continue;
            }
            if (NodeLine().Match(line) is not { Success: true } m)
                continue; // comments, dom0.* facts, the "create failed as expected" lines
            string phase = m.Groups["phase"].Value;
            if (!domids.TryGetValue(phase, out ushort domid))
                throw new InvalidDataException($"{RelativePath}: node before any xs.{phase}.domid line: {line}");
            nodes.Add(new RecordedNode(phase, m.Groups["section"].Value, domid, m.Groups["path"].Value, m.Groups["value"].Value, m.Groups["perms"].Value));
        }
        if (nodes.Count == 0)
            throw new InvalidDataException($"{RelativePath} holds no xs.* node lines");
        return nodes;
    }

    /// <summary>
    /// Replaces the guest's domid where libxl puts it (the guest's home, backend/&lt;kind&gt;/&lt;domid&gt;,
    /// /libxl/&lt;domid&gt;), and nowhere else, so a devid or a value that happens to equal it is left alone.
    /// </summary>
    public static string NormalisePath(string path, ushort domid)
    {
        string d = domid.ToString(CultureInfo.InvariantCulture);
        foreach (string prefix in new[] { "/local/domain/0/backend/vbd/", "/local/domain/0/backend/vif/", "/local/domain/", "/libxl/" })
        {
            if (!path.StartsWith(prefix + d, StringComparison.Ordinal))
                continue;
            string rest = path[(prefix.Length + d.Length)..];
            if (rest.Length == 0 || rest[0] == '/')
                return prefix + DomidToken + rest;
        }
        return path;
    }

    /// <summary>Values that name the guest: paths into its directories and frontend-id.</summary>
    public static string NormaliseValue(string path, string value, ushort domid)
    {
        if (value.StartsWith('/'))
            return NormalisePath(value, domid);
        if (path.EndsWith("/frontend-id", StringComparison.Ordinal) && value == domid.ToString(CultureInfo.InvariantCulture))
            return DomidToken;
        return value;
    }

    /// <summary>"n0,r1" with domid 1 → "n0,r&lt;domid&gt;"; dom0 (the backend domain) stays as it is.</summary>
    public static string NormalisePerms(string perms, ushort domid) =>
        string.Join(',', perms.Split(',').Select(e =>
        {
            var m = PermEntry().Match(e.Trim());
            if (!m.Success)
                throw new InvalidDataException($"permission entry '{e}' is not <n|r|w|b><domid>");
            return m.Groups["domid"].Value == domid.ToString(CultureInfo.InvariantCulture) ? m.Groups["letter"].Value + DomidToken : m.Value;
        }));

    /// <summary>The directory a section's nodes sit in (every recorded section is one device's flat directory).</summary>
    public static string SectionRoot(IEnumerable<RecordedNode> nodes)
    {
        var roots = nodes.Select(n => n.Path[..n.Path.LastIndexOf('/')]).Distinct(StringComparer.Ordinal).ToList();
        return roots.Count == 1 ? roots[0] : throw new InvalidDataException($"a section spans several directories: {string.Join(", ", roots)}");
    }

    /// <summary>Every node below <paramref name="root"/> (not the root itself), as xenstore-ls -fp lists them.</summary>
    public static async Task<List<(string Path, string Value, string Perms)>> DumpAsync(XenStoreClient xs, string root)
    {
        var result = new List<(string, string, string)>();
        IReadOnlyList<string> children;
        try
        {
            children = await xs.DirectoryAsync(root);
        }
        catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.ENOENT)
        {
            return result; // a missing directory shows up as every recorded node missing
        }
        foreach (string child in children)
        {
            string path = root + "/" + child;
            result.Add((path, await xs.ReadStringAsync(path), await PermsAsync(xs, path)));
            result.AddRange(await DumpAsync(xs, path));
        }
        return result;
    }

    public static async Task<string> PermsAsync(XenStoreClient xs, string path) =>
        string.Join(',', (await xs.GetPermissionsAsync(path)).Select(p => p.ToString()));

    /// <summary>
    /// Key-by-key differences: the set of paths, then each value and each permission list, one line each
    /// ("missing", "extra", "value", "perms"), in path order so a failure lists them all at once.
    /// </summary>
    public static List<string> Diff(
        IReadOnlyDictionary<string, (string Value, string Perms)> expected,
        IReadOnlyDictionary<string, (string Value, string Perms)> actual)
    {
        var diffs = new List<string>();
        foreach (string path in expected.Keys.Union(actual.Keys).Order(StringComparer.Ordinal))
        {
            bool inExpected = expected.TryGetValue(path, out var e);
            bool inActual = actual.TryGetValue(path, out var a);
            if (!inActual)
                diffs.Add($"missing {path} = \"{e.Value}\" ({e.Perms})");
            else if (!inExpected)
                diffs.Add($"extra {path} = \"{a.Value}\" ({a.Perms})");
            else
            {
                if (e.Value != a.Value)
                    diffs.Add($"value {path}: libxl \"{e.Value}\", simulated \"{a.Value}\"");
                if (e.Perms != a.Perms)
                    diffs.Add($"perms {path}: libxl ({e.Perms}), simulated ({a.Perms})");
            }
        }
        return diffs;
    }
}
