namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>How <see cref="SimulatedToolstack.SaveRestoreAsync"/> moves a guest.</summary>
/// <param name="NewDomid">The restored domain's id: a restore never gets the old one back.</param>
public sealed record SaveRestoreSpec(ushort NewDomid)
{
    /// <summary>
    /// <c>xl migrate</c> ordering (destination built before the source is destroyed) instead of
    /// <c>xl save</c> then <c>xl restore</c> (source destroyed first).
    /// </summary>
    public bool Migrate { get; init; }

    /// <summary>
    /// The disk as the destination configures it (another host may see the image elsewhere, or
    /// without discard); null keeps the source's configuration.
    /// </summary>
    public Func<DiskSpec, DiskSpec>? RestoreDisk { get; init; }
}

/// <summary>What a save/restore did, and how long its steps took (for bounds in tests).</summary>
/// <param name="Guest">The restored domain.</param>
/// <param name="Devices">Its devices, freshly added.</param>
/// <param name="Suspended">When every frontend had frozen.</param>
/// <param name="SourceDestroyed">When the source domain and its backend nodes were gone.</param>
/// <param name="Total">When the move was over: the frontends handed to the new domain (and, for a
/// migration, the source destroyed after that).</param>
public sealed record SaveRestoreResult(SimulatedGuest Guest, IReadOnlyList<AttachedDevice> Devices, TimeSpan Suspended, TimeSpan SourceDestroyed, TimeSpan Total);
