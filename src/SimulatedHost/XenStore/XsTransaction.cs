using System.Collections.Immutable;

namespace XenBackends.SimulatedHost.XenStore;

/// <summary>
/// An open transaction: a snapshot of the whole tree at start (free, the tree is immutable) and a private
/// view the requests change. Commit fails with EAGAIN if any path it touched changed in the live tree.
/// </summary>
internal sealed class XsTransaction(uint id, ImmutableDictionary<string, XsNode> snapshot, XenStoreServerOptions options)
{
    public uint Id { get; } = id;
    public ImmutableDictionary<string, XsNode> Snapshot { get; } = snapshot;
    public XsTreeView View { get; } = new(snapshot, options);

    public bool ConflictsWith(ImmutableDictionary<string, XsNode> live)
    {
        foreach (var path in View.Touched)
            if (!ReferenceEquals(Snapshot.GetValueOrDefault(path), live.GetValueOrDefault(path))) return true;
        return false;
    }
}
