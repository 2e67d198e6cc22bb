using System.Diagnostics;
using XenBackends.Backend.Net.Control;

namespace XenBackends.Backend.Net;

/// <summary>
/// What the queues of one connected vif share: the multicast filter, the hash settings from the
/// control ring and each other (a frame read on one queue's tap fd may belong to another guest queue).
/// </summary>
internal sealed class VifShared
{
    private static readonly double TicksToMicroseconds = 1_000_000.0 / Stopwatch.Frequency;

    public VifShared(MulticastFilter multicast, CtrlRequestProcessor? ctrl, Func<long>? clockMicroseconds)
    {
        Multicast = multicast;
        Ctrl = ctrl;
        ClockMicroseconds = clockMicroseconds ?? (() => (long)(Stopwatch.GetTimestamp() * TicksToMicroseconds));
    }

    public MulticastFilter Multicast { get; }

    public CtrlRequestProcessor? Ctrl { get; }

    /// <summary>Monotonic microseconds (injectable so rate-limit tests need no wall-clock timing).</summary>
    public Func<long> ClockMicroseconds { get; }

    /// <summary>All queues of the connection, set once before any starts.</summary>
    public NetQueue[] Queues { get; set; } = [];

    public RxHashSettings Hash => Ctrl?.Settings ?? RxHashSettings.Initial;
}
