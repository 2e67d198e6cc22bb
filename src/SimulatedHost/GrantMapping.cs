using XenBackends.Native;
using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// A contiguous mapping of granted guest pages. Disposing it unmaps the pages first and only then drops
/// the pins, so the guest can never end access while the backend can still touch the memory.
/// </summary>
internal sealed class GrantMapping : SharedMemory
{
    private readonly MappedMemory _pages;
    private readonly GrantTable _grants;
    private readonly uint[] _refs;
    private readonly bool _writable;

    public GrantMapping(MappedMemory pages, GrantTable grants, uint[] refs, bool writable)
        : base(pages.Address, pages.Length)
    {
        _pages = pages;
        _grants = grants;
        _refs = refs;
        _writable = writable;
    }

    protected override void Release()
    {
        _pages.Dispose();
        foreach (uint gref in _refs)
            _grants.Unpin(gref, _writable);
    }
}
