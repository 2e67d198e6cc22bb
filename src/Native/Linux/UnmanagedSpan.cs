namespace XenBackends.Native.Linux;

/// <summary>
/// The one place a raw address becomes a span. Only for addresses an ABI hands us as plain numbers
/// (the local side of a grant copy segment is a <c>void*</c>, exactly as in libxengnttab): the caller
/// vouches that the range is mapped, just as a real gntdev caller does.
/// </summary>
public static unsafe class UnmanagedSpan
{
    public static Span<byte> FromAddress(nint address, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (address == 0 && length != 0)
            throw new ArgumentException("null address for a non-empty range", nameof(address));
        return new Span<byte>((void*)address, length);
    }
}
