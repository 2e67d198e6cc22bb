namespace XenBackends.SimulatedHost.Guest;

/// <summary>One guest page granted to the backend domain.</summary>
internal readonly record struct GrantedPage(uint Frame, uint Gref);

/// <summary>
/// Where a frontend gets pages to hand the backend. Without persistent grants every page is granted for
/// one request and its access ended at completion (a page the backend still has mapped is leaked, as
/// Linux's deferred end-access would eventually free it); with <c>feature-persistent</c> negotiated, pages
/// are granted writable once and reused, which is what Linux blkfront does.
/// </summary>
internal sealed class GrantedPages(SimulatedDomain domain, ushort backendDomid, bool persistent)
{
    private readonly Lock _lock = new();
    private readonly Stack<GrantedPage> _free = new();
    private readonly List<GrantedPage> _all = [];

    public bool Persistent => persistent;

    public GrantedPage Rent(bool backendWrites)
    {
        if (persistent)
        {
            lock (_lock)
                if (_free.TryPop(out var page))
                    return page;
        }
        uint frame = domain.Memory.AllocatePage();
        uint gref = domain.Grants.GrantAccess(backendDomid, frame, readOnly: !persistent && !backendWrites);
        var granted = new GrantedPage(frame, gref);
        if (persistent)
            lock (_lock)
                _all.Add(granted);
        return granted;
    }

    public void Return(GrantedPage page)
    {
        if (persistent)
        {
            lock (_lock)
                _free.Push(page);
            return;
        }
        if (domain.Grants.EndAccess(page.Gref))
            domain.Memory.FreePage(page.Frame);
    }

    /// <summary>Ends every persistent grant (teardown; the backend has unmapped them by then or they leak).</summary>
    public void Release()
    {
        lock (_lock)
        {
            foreach (var page in _all)
                if (domain.Grants.EndAccess(page.Gref))
                    domain.Memory.FreePage(page.Frame);
            _all.Clear();
            _free.Clear();
        }
    }
}
