namespace XenBackends.SimulatedHost;

/// <summary>A simulated guest: its RAM, its grant table, and its own event-channel handle.</summary>
public sealed class SimulatedDomain : IDisposable
{
    internal SimulatedDomain(ushort domid, GuestMemory memory, GrantTable grants, SimulatedEventChannels events)
    {
        Domid = domid;
        Memory = memory;
        Grants = grants;
        EventChannels = events;
    }

    public ushort Domid { get; }

    public GuestMemory Memory { get; }

    public GrantTable Grants { get; }

    /// <summary>The guest kernel's event channels (allocates unbound ports for its backends).</summary>
    public SimulatedEventChannels EventChannels { get; }

    public void Dispose()
    {
        EventChannels.Dispose();
        Grants.Dispose();
        Memory.Dispose();
    }
}
