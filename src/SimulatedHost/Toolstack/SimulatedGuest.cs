using XenBackends.SimulatedHost.Guest;
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
    private readonly List<DiskSpec> _disks = [];
    private readonly List<NicSpec> _nics = [];

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

    /// <summary>The guest's disks as configured (libxl keeps the domain config for save and migrate).</summary>
    public IReadOnlyList<DiskSpec> Disks
    {
        get
        {
            lock (_lock)
                return [.. _disks];
        }
    }

    /// <summary>The guest's NICs, each with the devid it was given.</summary>
    public IReadOnlyList<NicSpec> Nics
    {
        get
        {
            lock (_lock)
                return [.. _nics];
        }
    }

    internal void Remember(DiskSpec disk)
    {
        lock (_lock)
            _disks.Add(disk);
    }

    internal void Remember(NicSpec nic)
    {
        lock (_lock)
            _nics.Add(nic);
    }

    /// <summary>
    /// The guest acknowledges a suspend request: every frontend freezes with its in-flight requests
    /// kept, and leaves this domain's driver list (it will resume in another domain). Refused before
    /// anything stops when a driver cannot model resume, so a save never half-happens.
    /// </summary>
    internal async Task<IReadOnlyList<XenbusFrontend>> SuspendDriversAsync()
    {
        IGuestDriver[] drivers;
        lock (_lock)
            drivers = [.. _drivers];
        var frontends = new List<XenbusFrontend>();
        foreach (var driver in drivers)
        {
            if (driver is not XenbusFrontend { SupportsSuspend: true } frontend)
                throw new NotSupportedException($"{driver.GetType().Name} of domain {Domid} does not model suspend/resume");
            frontends.Add(frontend);
        }
        foreach (var frontend in frontends)
            await frontend.SuspendAsync().ConfigureAwait(false);
        return frontends;
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
