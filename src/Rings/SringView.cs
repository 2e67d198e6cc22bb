namespace XenBackends.Rings;

/// <summary>
/// Pointer arithmetic over one mapped <c>X_sring</c>, shared by the front, back and raw views.
/// Every index access is a single volatile load or store: the peer may change it at any moment.
/// </summary>
internal readonly unsafe struct SringView
{
    private readonly byte* _base;

    public SringView(Native.SharedMemory memory, RingSlotLayout layout)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (memory.Length < SharedRing.PageSize || memory.Length % SharedRing.PageSize != 0)
            throw new ArgumentException($"a shared ring spans whole pages; got {memory.Length} bytes", nameof(memory));
        uint size = layout.RingSize(memory.Length);
        if (size == 0)
            throw new ArgumentException($"a {layout.SlotSize}-byte slot does not fit in {memory.Length} bytes", nameof(layout));
        _ = memory.Span; // throws if already released
        Memory = memory;
        _base = (byte*)memory.Address;
        Size = size;
        SlotSize = layout.SlotSize;
    }

    public Native.SharedMemory Memory { get; }

    public uint Size { get; }

    public int SlotSize { get; }

    public uint Load(int offset) => Volatile.Read(ref *(uint*)(_base + offset));

    public void Store(int offset, uint value) => Volatile.Write(ref *(uint*)(_base + offset), value);

    /// <summary><c>RING_GET_REQUEST/RESPONSE</c>: free-running index masked into the ring.</summary>
    public byte* Slot(uint index) => _base + SharedRing.HeaderSize + (nint)(index & (Size - 1)) * SlotSize;

    public Span<byte> Bytes(int offset, int length) => new(_base + offset, length);

    public void ThrowIfReleased() => ObjectDisposedException.ThrowIf(Memory.IsDisposed, Memory);
}
