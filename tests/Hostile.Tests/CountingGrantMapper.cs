using XenBackends.Native;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// Wraps the simulated mapper to count maps: the XSA-229 argument (grant copy never maps a data
/// page) becomes a count that must stay at the number of ring mappings.
/// </summary>
internal sealed class CountingGrantMapper(IGrantMapper inner) : IGrantMapper
{
    private int _maps;
    private long _copied;
    private readonly System.Collections.Concurrent.ConcurrentQueue<SharedMemory> _mapped = new();

    public int Maps => Volatile.Read(ref _maps);

    /// <summary>Mappings handed out and not yet released (a leak shows here).</summary>
    public int Live => _mapped.Count(m => !m.IsDisposed);

    public long CopySegments => Interlocked.Read(ref _copied);

    public SharedMemory Map(ushort domid, ReadOnlySpan<uint> refs, bool writable)
    {
        Interlocked.Increment(ref _maps);
        var memory = inner.Map(domid, refs, writable);
        _mapped.Enqueue(memory);
        return memory;
    }

    public GrantPages MapPages(ushort domid, ReadOnlySpan<uint> refs, bool writable)
    {
        Interlocked.Increment(ref _maps);
        return inner.MapPages(domid, refs, writable);
    }

    public void UnmapPages(in GrantPages pages) => inner.UnmapPages(pages);

    public void Copy(Span<GrantCopySegment> segments)
    {
        Interlocked.Add(ref _copied, segments.Length);
        inner.Copy(segments);
    }

    public void Dispose() => inner.Dispose();
}
