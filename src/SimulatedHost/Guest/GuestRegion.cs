using XenBackends.Native;

namespace XenBackends.SimulatedHost.Guest;

/// <summary>
/// Consecutive pages of a guest's RAM as the guest kernel sees them (a ring, an indirect page). It only
/// borrows the guest's own mapping, so disposing it releases nothing; the frames go back with
/// <see cref="GuestMemory.FreePage"/>.
/// </summary>
internal sealed class GuestRegion : SharedMemory
{
    public GuestRegion(GuestMemory memory, uint firstFrame, int pages)
        : base(memory.View.Address + (nint)firstFrame * SharedRingPage, pages * SharedRingPage)
    {
        if (firstFrame + (uint)pages > memory.PageCount)
            throw new ArgumentOutOfRangeException(nameof(pages), "the region runs past the guest's RAM");
        FirstFrame = firstFrame;
        Pages = pages;
    }

    private const int SharedRingPage = 4096;

    public uint FirstFrame { get; }

    public int Pages { get; }

    protected override void Release()
    {
    }
}
