using System.Collections.Immutable;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.XenStore;

/// <summary>
/// One node, immutable: every change makes a new object, so a transaction detects conflicts by comparing
/// references between its snapshot and the live tree.
/// </summary>
internal sealed class XsNode(byte[] value, ImmutableArray<XsPermission> permissions, ImmutableSortedSet<string> children)
{
    public byte[] Value { get; } = value;
    public ImmutableArray<XsPermission> Permissions { get; } = permissions;
    public ImmutableSortedSet<string> Children { get; } = children;

    public uint Owner => Permissions[0].DomId;

    public XsNode WithValue(byte[] value) => new(value, Permissions, Children);
    public XsNode WithPermissions(ImmutableArray<XsPermission> permissions) => new(Value, permissions, Children);
    public XsNode WithChildren(ImmutableSortedSet<string> children) => new(Value, Permissions, children);

    /// <summary>xenstore.txt semantics: dom0 and the owner may do anything; others get their entry, else the owner entry's letter.</summary>
    public static XsAccess AccessFor(ImmutableArray<XsPermission> permissions, uint domId)
    {
        if (domId == 0 || permissions[0].DomId == domId) return XsAccess.Both;
        for (var i = 1; i < permissions.Length; i++)
            if (permissions[i].DomId == domId) return permissions[i].Access;
        return permissions[0].Access;
    }
}
