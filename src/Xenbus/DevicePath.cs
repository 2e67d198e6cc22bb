using System.Globalization;

namespace XenBackends.Xenbus;

/// <summary>
/// Where a split device lives in xenstore: <c>/local/domain/&lt;backend-domid&gt;/backend/&lt;kind&gt;/&lt;frontend-domid&gt;/&lt;devid&gt;</c>
/// (kind "vbd", "vif", "qdisk", ...), as libxl creates it.
/// </summary>
public readonly record struct DevicePath(uint BackendDomId, string Kind, uint FrontendDomId, uint DevId)
{
    public string Backend => $"/local/domain/{BackendDomId}/backend/{Kind}/{FrontendDomId}/{DevId}";

    /// <summary>The frontend directory libxl pairs with this backend (kind "vbd"/"qdisk" -> device/vbd).</summary>
    public string ExpectedFrontend => $"/local/domain/{FrontendDomId}/device/{FrontendKind}/{DevId}";

    /// <summary>The backend path relative to the backend domain's home, as Linux names devices ("backend/vbd/1/51712").</summary>
    public string NodeName => $"backend/{Kind}/{FrontendDomId}/{DevId}";

    public string FrontendKind => Kind switch
    {
        "qdisk" or "vbd3" => "vbd",
        "qnic" => "vif",
        _ => Kind,
    };

    public override string ToString() => $"{Kind} {FrontendDomId}/{DevId}";

    /// <summary>Parses a backend path; null when it is not one (wrong shape or non-numeric ids).</summary>
    public static DevicePath? TryParse(string path)
    {
        var parts = path.Split('/');
        // "", "local", "domain", be, "backend", kind, fe, devid
        if (parts.Length != 8 || parts[0] != "" || parts[1] != "local" || parts[2] != "domain" || parts[4] != "backend")
            return null;
        if (!TryId(parts[3], out uint be) || !TryId(parts[6], out uint fe) || !TryId(parts[7], out uint dev) || parts[5].Length == 0)
            return null;
        return new DevicePath(be, parts[5], fe, dev);
    }

    internal static bool TryId(string s, out uint value) =>
        uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value) && s == value.ToString(CultureInfo.InvariantCulture);
}
