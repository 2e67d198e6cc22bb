namespace XenBackends.Rings;

/// <summary>
/// The fixed part of every <c>DEFINE_RING_TYPES</c> shared ring (io/ring.h <c>struct X_sring</c>):
/// four free-running <c>RING_IDX</c> (u32) indexes, a 4-byte private area, padding to 64 bytes, then
/// the slots.
/// </summary>
public static class SharedRing
{
    public const int PageSize = 4096;
    public const int ReqProdOffset = 0;
    public const int ReqEventOffset = 4;
    public const int RspProdOffset = 8;
    public const int RspEventOffset = 12;
    public const int PvtOffset = 16;
    public const int PvtLength = 4;
    /// <summary><c>offsetof(struct X_sring, ring)</c>: the 44-byte <c>__pad</c> ends here.</summary>
    public const int HeaderSize = 64;

    /// <summary>
    /// <c>__CONST_RING_SIZE</c>: (bytes - 64) / slot, rounded down to a power of two (<c>__RD32</c>),
    /// so that free-running indexes can be masked into slots.
    /// </summary>
    public static uint Size(int ringBytes, int slotSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slotSize);
        if (ringBytes <= HeaderSize)
            return 0;
        uint slots = (uint)((ringBytes - HeaderSize) / slotSize);
        return slots == 0 ? 0 : 1u << (31 - System.Numerics.BitOperations.LeadingZeroCount(slots));
    }
}
