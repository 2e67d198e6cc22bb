namespace XenBackends.XenStore;

/// <summary>The access letter of one permission entry (xenstore.txt): n, r, w or b (both).</summary>
[Flags]
public enum XsAccess
{
    None = 0,
    Read = 1,
    Write = 2,
    Both = Read | Write,
}

/// <summary>
/// One entry of a node's permission list. In a list the first entry names the owner and its access is
/// the default for every domain not listed later.
/// </summary>
public readonly record struct XsPermission(uint DomId, XsAccess Access)
{
    public override string ToString() => $"{Letter(Access)}{DomId}";

    public static char Letter(XsAccess access) => access switch
    {
        XsAccess.None => 'n',
        XsAccess.Read => 'r',
        XsAccess.Write => 'w',
        _ => 'b',
    };

    public static bool TryParse(string text, out XsPermission permission)
    {
        permission = default;
        if (text.Length < 2) return false;
        XsAccess access;
        switch (text[0])
        {
            case 'n': access = XsAccess.None; break;
            case 'r': access = XsAccess.Read; break;
            case 'w': access = XsAccess.Write; break;
            case 'b': access = XsAccess.Both; break;
            default: return false;
        }
        foreach (var c in text.AsSpan(1)) if (c is < '0' or > '9') return false;
        if (!uint.TryParse(text.AsSpan(1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var domId)) return false;
        permission = new XsPermission(domId, access);
        return true;
    }

    public static XsPermission Parse(string text) =>
        TryParse(text, out var permission) ? permission : throw new FormatException($"'{text}' is not a xenstore permission (n|r|w|b followed by a domid)");
}
