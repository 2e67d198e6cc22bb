using XenBackends.Native;

namespace XenBackends.SimulatedHost;

/// <summary>
/// A Xen host without Xen: simulated guests (memfd RAM, grant table, event channels) and the
/// hypervisor services a backend uses on them. dom0 (domid 0) always exists, as the backend domain.
/// Serve it to other processes with <see cref="HostServer"/>.
/// </summary>
public sealed class SimulatedXenHost : IForeignDomains, IDisposable
{
    public const ushort Dom0 = 0;
    private readonly Lock _lock = new();
    private readonly Dictionary<ushort, (SimulatedDomain Domain, ForeignDomain Foreign)> _domains = [];

    public SimulatedXenHost()
    {
        Switch.AddDomain(Dom0);
    }

    public EventChannelSwitch Switch { get; } = new();

    internal IEventChannelBroker Broker => Switch;

    /// <summary>Creates a guest with <paramref name="pageCount"/> pages of RAM and a grant table.</summary>
    public SimulatedDomain CreateDomain(ushort domid, int pageCount, int grantEntries = 1024)
    {
        // DOMID_FIRST_RESERVED: ids from 0x7FF0 up name special domains (DOMID_SELF...), never a guest.
        if (domid == Dom0 || domid >= 0x7FF0)
            throw new ArgumentOutOfRangeException(nameof(domid), $"domid {domid} cannot be a simulated guest");
        lock (_lock)
        {
            if (_domains.ContainsKey(domid))
                throw new ArgumentException($"domain {domid} already exists", nameof(domid));
            var memory = new GuestMemory(domid, pageCount);
            GrantTable? grants = null;
            try
            {
                grants = GrantTable.Create(domid, grantEntries);
                Switch.AddDomain(domid);
                var domain = new SimulatedDomain(domid, memory, grants, new SimulatedEventChannels(domid, Switch));
                _domains.Add(domid, (domain, new ForeignDomain(domid, memory.File, grants, owned: false)));
                return domain;
            }
            catch
            {
                grants?.Dispose();
                memory.Dispose();
                throw;
            }
        }
    }

    public SimulatedDomain GetDomain(ushort domid)
    {
        lock (_lock)
            return _domains.TryGetValue(domid, out var d) ? d.Domain : throw new KeyNotFoundException($"domain {domid} does not exist");
    }

    /// <summary>Destroys a guest: its ports close (backends see their ends go unbound) and its memory is released.</summary>
    public void DestroyDomain(ushort domid)
    {
        (SimulatedDomain Domain, ForeignDomain Foreign) d;
        lock (_lock)
        {
            if (!_domains.Remove(domid, out d))
                throw new KeyNotFoundException($"domain {domid} does not exist");
        }
        d.Domain.EventChannels.Dispose();
        Switch.RemoveDomain(domid);
        d.Foreign.Dispose();
        d.Domain.Dispose();
    }

    /// <summary>An in-process grant mapper acting as <paramref name="backendDomid"/> (normally dom0).</summary>
    public IGrantMapper CreateGrantMapper(ushort backendDomid = Dom0) => new SimulatedGrantMapper(backendDomid, this);

    /// <summary>An in-process event-channel handle for <paramref name="domid"/> (normally dom0).</summary>
    public SimulatedEventChannels OpenEventChannels(ushort domid = Dom0) => new(domid, Switch);

    ForeignDomain? IForeignDomains.Find(ushort domid)
    {
        lock (_lock)
            return _domains.TryGetValue(domid, out var d) ? d.Foreign : null;
    }

    internal bool TryGetDomain(ushort domid, out SimulatedDomain domain)
    {
        lock (_lock)
        {
            bool found = _domains.TryGetValue(domid, out var d);
            domain = d.Domain;
            return found;
        }
    }

    public void Dispose()
    {
        List<ushort> ids;
        lock (_lock)
            ids = [.. _domains.Keys];
        foreach (ushort id in ids)
            DestroyDomain(id);
        Switch.Dispose();
    }
}
