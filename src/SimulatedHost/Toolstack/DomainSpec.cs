namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>libxl's domain types; only PV makes libxl write the frontend <c>protocol</c> key of a disk.</summary>
public enum GuestType
{
    Pv,
    Pvh,
    Hvm,
}

/// <summary>What <see cref="SimulatedToolstack.CreateDomainAsync"/> needs to build a guest.</summary>
public sealed record DomainSpec(ushort Domid, string Name)
{
    public GuestType Type { get; init; } = GuestType.Pv;

    /// <summary>Pages of simulated RAM: rings, indirect pages and I/O buffers come from here.</summary>
    public int Pages { get; init; } = 2048;

    public int GrantEntries { get; init; } = 4096;

    /// <summary>Written to memory/static-max and memory/target, as libxl's build does.</summary>
    public long MemoryKb { get; init; } = 524288;
}
