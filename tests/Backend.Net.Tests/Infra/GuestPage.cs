using XenBackends.Native;
using XenBackends.SimulatedHost;

namespace XenBackends.Backend.Net.Tests.Infra;

/// <summary>The guest's own view of one of its pages, as the SharedMemory a FrontRing needs.</summary>
internal sealed class GuestPage : SharedMemory
{
    public GuestPage(GuestMemory memory, uint frame) : base(memory.View.Address + (nint)frame * 4096, 4096) => Frame = frame;

    public uint Frame { get; }

    protected override void Release()
    {
        // The guest owns its RAM; this view maps nothing of its own.
    }
}
