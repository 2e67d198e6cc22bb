using XenBackends.Native;
using XenBackends.SimulatedHost;

namespace XenBackends.Fuzz;

/// <summary>
/// One simulated guest on an in-process simulated host (memfd memory, a real grant table, event
/// channels on eventfd) that a target keeps for all its inputs, with dom0's grant mapper. Pages
/// are granted once; inputs choose among them by index.
/// </summary>
internal sealed class GuestWorld
{
    public const ushort Domid = 5;

    public GuestWorld(int pages)
    {
        Host = new SimulatedXenHost();
        Domain = Host.CreateDomain(Domid, pages, 1024);
        Grants = Host.CreateGrantMapper(0);
    }

    public SimulatedXenHost Host { get; }

    public SimulatedDomain Domain { get; }

    public IGrantMapper Grants { get; }

    /// <summary>A fresh guest page granted to dom0; returns (gref, frame).</summary>
    public (uint Gref, uint Frame) GrantPage(bool readOnly)
    {
        uint frame = Domain.Memory.AllocatePage();
        return (Domain.Grants.GrantAccess(0, frame, readOnly), frame);
    }

    public Span<byte> Page(uint frame) => Domain.Memory.Page(frame);

    /// <summary>An interdomain channel as a backend binds it: guest's unbound port, dom0's handle and local port.</summary>
    public (uint GuestPort, IEventChannels Backend, uint LocalPort) BindChannel()
    {
        uint guestPort = Domain.EventChannels.BindUnboundPort(0);
        var events = Host.OpenEventChannels(0);
        return (guestPort, events, events.BindInterdomain(Domid, guestPort));
    }

    public void CloseGuestPort(uint guestPort) => Domain.EventChannels.Unbind(guestPort);

    /// <summary>
    /// Event, epoll, io_uring and memfd descriptors this process has open: a target compares the
    /// count before and after an input, so any such descriptor an input made the backend open and
    /// not close (memory and fds stay bounded, issue 6) is a violation. Files the runtime opens
    /// lazily (assemblies) are not counted; meanwhile only closing can happen (finalizers).
    /// </summary>
    public static int OpenDescriptors()
    {
        int count = 0;
        foreach (string fd in Directory.GetFiles("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(fd).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile (the enumeration's own descriptor)
            }
            if (target is not null && (target.StartsWith("anon_inode:", StringComparison.Ordinal) || target.StartsWith("/memfd:", StringComparison.Ordinal)))
                count++;
        }
        return count;
    }

    /// <summary>Fails the input when it left more such descriptors open than <paramref name="before"/> (<see cref="OpenDescriptors"/>).</summary>
    public static void CheckDescriptors(int before)
    {
        int after = OpenDescriptors();
        InvariantViolation.Check(after <= before, () => $"{after - before} descriptors left open by one input");
    }

    /// <summary>A deterministic page pattern, different for every page and offset.</summary>
    public static void Fill(Span<byte> page, int seed)
    {
        for (int i = 0; i < page.Length; i++)
            page[i] = (byte)(seed * 131 + i * 7 + (i >> 9));
    }
}
