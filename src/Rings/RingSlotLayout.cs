using System.Runtime.CompilerServices;

namespace XenBackends.Rings;

/// <summary>
/// The two message sizes of a ring type. A slot is the union of request and response
/// (<c>union X_sring_entry</c>), so its size is the larger of the two; a response overlays the
/// request slot it answers.
/// </summary>
public readonly record struct RingSlotLayout
{
    public RingSlotLayout(int requestSize, int responseSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(requestSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(responseSize);
        RequestSize = requestSize;
        ResponseSize = responseSize;
    }

    public int RequestSize { get; }

    public int ResponseSize { get; }

    public int SlotSize => Math.Max(RequestSize, ResponseSize);

    /// <summary>The layout of a ring whose request and response are these C-layout structs.</summary>
    public static RingSlotLayout Of<TRequest, TResponse>()
        where TRequest : unmanaged
        where TResponse : unmanaged =>
        new(Unsafe.SizeOf<TRequest>(), Unsafe.SizeOf<TResponse>());

    /// <summary>Ring entries in a shared ring of <paramref name="ringBytes"/> (<c>__CONST_RING_SIZE</c>).</summary>
    public uint RingSize(int ringBytes) => SharedRing.Size(ringBytes, SlotSize);
}
