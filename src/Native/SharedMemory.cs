namespace XenBackends.Native;

/// <summary>
/// A run of memory that another domain can read or write at any moment: a grant mapping, a view of
/// simulated guest memory, a test buffer. Everything above this layer treats its contents as hostile
/// and volatile; the owner of a <see cref="SharedMemory"/> must outlive every ring or view built on it.
/// </summary>
public abstract unsafe class SharedMemory : IDisposable
{
    private int _released;

    protected SharedMemory(nint address, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (address == 0 && length != 0)
            throw new ArgumentException("null address for a non-empty region", nameof(address));
        Address = address;
        Length = length;
    }

    public nint Address { get; }

    public int Length { get; }

    public bool IsDisposed => Volatile.Read(ref _released) != 0;

    /// <summary>The whole region. Never cache a span across a point where the region may be disposed.</summary>
    public Span<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return new Span<byte>((void*)Address, Length);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
            Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Unmaps or frees the region; called exactly once.</summary>
    protected abstract void Release();
}
