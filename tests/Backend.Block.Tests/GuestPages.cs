using XenBackends.Native;

namespace XenBackends.Backend.Block.Tests;

/// <summary>A run of consecutive guest frames seen through the guest's own view of its RAM (the frontend side of a ring).</summary>
internal sealed class GuestPages(nint address, int length) : SharedMemory(address, length)
{
    protected override void Release()
    {
        // The guest's RAM belongs to the simulated domain.
    }
}
