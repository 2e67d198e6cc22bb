using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// What the simulated hypervisor needs of a guest to serve a backend's grant operations: its RAM memfd
/// and its grant table. In the host process these are the guest's own objects; in a worker they are
/// built from fds received over the host socket.
/// </summary>
internal sealed class ForeignDomain(ushort domid, MemFd memory, GrantTable grants, bool owned) : IDisposable
{
    private readonly Lock _lock = new();
    private MappedMemory? _all;

    public ushort Domid { get; } = domid;

    public MemFd Memory { get; } = memory;

    public GrantTable Grants { get; } = grants;

    /// <summary>All guest RAM, writable, mapped once on first use: the simulated hypervisor's view for grant copy.</summary>
    public Span<byte> Frame(uint frame)
    {
        // Once mapped it stays mapped: only the first use takes the lock (this runs per copied page).
        MappedMemory all = Volatile.Read(ref _all) ?? MapOnce();
        return all.Span.Slice((int)frame * MemFd.PageSize, MemFd.PageSize);
    }

    private MappedMemory MapOnce()
    {
        lock (_lock)
        {
            if (_all is null)
                Volatile.Write(ref _all, Memory.MapAll(writable: true));
            return _all;
        }
    }

    public void Dispose()
    {
        _all?.Dispose();
        if (owned)
        {
            Grants.Dispose();
            Memory.Dispose();
        }
    }
}

/// <summary>Where a grant mapper finds the domains it may be asked about.</summary>
internal interface IForeignDomains
{
    /// <summary>The domain, or null when no such domain exists (GNTST_bad_domain).</summary>
    ForeignDomain? Find(ushort domid);
}
