using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>Something running inside a guest that must stop touching guest memory when the domain dies.</summary>
public interface IGuestDriver
{
    /// <summary>The guest is paused for destruction: stop all work at once, write nothing more to xenstore.</summary>
    ValueTask HaltAsync();
}

/// <summary>
/// A guest the simulated toolstack created: its simulated domain (RAM, grants, event channels) and the
/// xenstored socket through which everything in it talks as its domid.
/// </summary>
public sealed class SimulatedGuest
{
    private readonly Lock _lock = new();
    private readonly List<IGuestDriver> _drivers = [];

    internal SimulatedGuest(SimulatedXenHost host, SimulatedDomain domain, DomainSpec spec, string xenStoreSocketPath, Guid uuid)
    {
        Host = host;
        Domain = domain;
        Spec = spec;
        XenStoreSocketPath = xenStoreSocketPath;
        Uuid = uuid;
    }

    public SimulatedXenHost Host { get; }

    public SimulatedDomain Domain { get; }

    public DomainSpec Spec { get; }

    public ushort Domid => Spec.Domid;

    public string Name => Spec.Name;

    public Guid Uuid { get; }

    /// <summary>Connections made here act as this guest (xenstored checks permissions as its domid).</summary>
    public string XenStoreSocketPath { get; }

    public string DomainPath => $"/local/domain/{Domid}";

    public bool IsDestroyed { get; private set; }

    public Task<XenStoreClient> OpenXenStoreAsync(CancellationToken cancellationToken = default) =>
        XenStoreClient.OpenSocketAsync(XenStoreSocketPath, cancellationToken: cancellationToken);

    /// <summary>Drivers register so that destroying the domain halts them before its memory goes away.</summary>
    public void Register(IGuestDriver driver)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(IsDestroyed, this);
            _drivers.Add(driver);
        }
    }

    public void Unregister(IGuestDriver driver)
    {
        lock (_lock)
            _drivers.Remove(driver);
    }

    internal async Task HaltAsync()
    {
        IGuestDriver[] drivers;
        lock (_lock)
        {
            IsDestroyed = true;
            drivers = [.. _drivers];
            _drivers.Clear();
        }
        foreach (var driver in drivers)
            await driver.HaltAsync().ConfigureAwait(false);
    }
}
