using System.Collections.Immutable;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.XenStore;

/// <summary>
/// A change that may fire watches. <see cref="Permissions"/> decide who may see it (the node's perms,
/// the old ones for a removal); <see cref="Recursive"/> marks removals, which also fire watches set below.
/// </summary>
internal readonly record struct XsChange(string Path, ImmutableArray<XsPermission> Permissions, bool Recursive);
