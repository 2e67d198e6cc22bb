using System.Collections.Immutable;
using XenBackends.XenStore;
using static XenBackends.XenStore.XsErrno;

namespace XenBackends.SimulatedHost.XenStore;

/// <summary>
/// The node operations with their permission and quota checks, applied to one version of the tree: the live
/// one, or a transaction's private copy. It records every path it looked at (for conflict detection) and
/// every change (for watches), so the same code serves both.
/// </summary>
internal sealed class XsTreeView(ImmutableDictionary<string, XsNode> nodes, XenStoreServerOptions options)
{
    public ImmutableDictionary<string, XsNode> Nodes { get; private set; } = nodes;
    public HashSet<string> Touched { get; } = new(StringComparer.Ordinal);
    public List<XsChange> Changes { get; } = [];

    public static ImmutableDictionary<string, XsNode> EmptyTree() =>
        ImmutableDictionary.Create<string, XsNode>(StringComparer.Ordinal)
            .Add("/", new XsNode([], [new XsPermission(0, XsAccess.None)], ImmutableSortedSet.Create<string>(StringComparer.Ordinal)));

    public XsNode? Get(string path)
    {
        Touched.Add(path);
        return Nodes.GetValueOrDefault(path);
    }

    private void Set(string path, XsNode node)
    {
        Touched.Add(path);
        Nodes = Nodes.SetItem(path, node);
    }

    private void Drop(string path)
    {
        Touched.Add(path);
        Nodes = Nodes.Remove(path);
    }

    public byte[] Read(uint domId, string path) => Readable(domId, path).Value;

    public ImmutableSortedSet<string> Directory(uint domId, string path) => Readable(domId, path).Children;

    public ImmutableArray<XsPermission> GetPermissions(uint domId, string path) => Readable(domId, path).Permissions;

    public void Write(uint domId, string path, byte[] value)
    {
        CheckValueSize(domId, value);
        var node = Get(path);
        if (node is null)
        {
            Create(domId, path, value);
            return;
        }
        Require(node, domId, XsAccess.Write);
        var updated = node.WithValue(value);
        Set(path, updated);
        Changes.Add(new XsChange(path, updated.Permissions, Recursive: false));
    }

    public void Mkdir(uint domId, string path)
    {
        var node = Get(path);
        if (node is null) Create(domId, path, []);
        else Require(node, domId, XsAccess.Write);
    }

    public void Remove(uint domId, string path)
    {
        if (path == "/") throw new XsError(EINVAL);
        var node = Get(path);
        var parentPath = ParentOf(path);
        var parent = Get(parentPath);
        if (node is null)
        {
            // xenstore.txt: removing a missing node is fine unless its parent is missing too.
            if (parent is null) throw new XsError(ENOENT);
            return;
        }
        Require(node, domId, XsAccess.Write);
        RemoveSubtree(path, node);
        Set(parentPath, parent!.WithChildren(parent.Children.Remove(NameOf(path))));
        Changes.Add(new XsChange(path, node.Permissions, Recursive: true));
    }

    public void SetPermissions(uint domId, string path, ImmutableArray<XsPermission> permissions)
    {
        var node = Get(path) ?? throw new XsError(ENOENT);
        // Only the owner (or dom0) may change permissions, and only dom0 may give a node away.
        if (domId != 0 && node.Owner != domId) throw new XsError(EACCES);
        if (domId != 0 && permissions[0].DomId != domId) throw new XsError(EPERM);
        if (QuotaApplies(domId) && permissions.Length > options.MaxPermissionsPerNode) throw new XsError(ENOSPC);
        var updated = node.WithPermissions(permissions);
        Set(path, updated);
        Changes.Add(new XsChange(path, updated.Permissions, Recursive: false));
    }

    /// <summary>Applies a committed transaction's paths onto this (live) view.</summary>
    public void Apply(XsTreeView transaction, IEnumerable<string> paths)
    {
        foreach (var path in paths)
        {
            if (transaction.Nodes.TryGetValue(path, out var node)) Nodes = Nodes.SetItem(path, node);
            else Nodes = Nodes.Remove(path);
        }
    }

    private XsNode Readable(uint domId, string path)
    {
        var node = Get(path) ?? throw new XsError(ENOENT);
        Require(node, domId, XsAccess.Read);
        return node;
    }

    private void Create(uint domId, string path, byte[] value)
    {
        // Find the deepest existing ancestor: creating below it needs write access to it.
        var missing = new Stack<string>();
        var current = path;
        XsNode? ancestor;
        while (true)
        {
            missing.Push(current);
            current = ParentOf(current);
            ancestor = Get(current);
            if (ancestor is not null) break;
        }
        Require(ancestor, domId, XsAccess.Write);
        if (QuotaApplies(domId) && OwnedBy(domId) + missing.Count > options.MaxEntriesPerDomain) throw new XsError(ENOSPC);

        var parentPath = current;
        var parent = ancestor;
        XsNode created = parent;
        while (missing.Count > 0)
        {
            var childPath = missing.Pop();
            // New nodes inherit the parent's permissions, but what an unprivileged domain creates it owns.
            var permissions = parent.Permissions;
            if (domId != 0) permissions = permissions.SetItem(0, new XsPermission(domId, permissions[0].Access));
            created = new XsNode(missing.Count == 0 ? value : [], permissions, ImmutableSortedSet.Create<string>(StringComparer.Ordinal));
            Set(parentPath, parent.WithChildren(parent.Children.Add(NameOf(childPath))));
            Set(childPath, created);
            parentPath = childPath;
            parent = created;
        }
        Changes.Add(new XsChange(path, created.Permissions, Recursive: false));
    }

    private void RemoveSubtree(string path, XsNode node)
    {
        foreach (var child in node.Children)
        {
            var childPath = Join(path, child);
            if (Get(childPath) is { } childNode) RemoveSubtree(childPath, childNode);
        }
        Drop(path);
    }

    private void CheckValueSize(uint domId, byte[] value)
    {
        if (QuotaApplies(domId) && value.Length > options.MaxValueSize) throw new XsError(ENOSPC);
    }

    private int OwnedBy(uint domId)
    {
        var count = 0;
        foreach (var node in Nodes.Values) if (node.Owner == domId) count++;
        return count;
    }

    private bool QuotaApplies(uint domId) => domId != 0 || options.QuotasApplyToDom0;

    private static void Require(XsNode node, uint domId, XsAccess access)
    {
        if ((XsNode.AccessFor(node.Permissions, domId) & access) != access) throw new XsError(EACCES);
    }

    public static string ParentOf(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash <= 0 ? "/" : path[..slash];
    }

    private static string NameOf(string path) => path[(path.LastIndexOf('/') + 1)..];

    public static string Join(string parent, string name) => parent == "/" ? "/" + name : parent + "/" + name;
}
