namespace XenBackends.Native;

/// <summary>
/// Guest pages mapped by <see cref="IGrantMapper.MapPages"/>: a value, not an object, so a data path
/// that maps and unmaps for every request allocates nothing. Give it back to
/// <see cref="IGrantMapper.UnmapPages"/> exactly once; the default value maps nothing.
/// </summary>
/// <param name="Address">Start of the virtually contiguous mapping.</param>
/// <param name="PageCount">How many 4 KiB pages (one per grant ref).</param>
/// <param name="Token">The mapper's own bookkeeping for this mapping; meaningless to callers.</param>
public readonly record struct GrantPages(nint Address, int PageCount, int Token)
{
    public const int PageSize = 4096;

    public bool IsMapped => Address != 0;

    public int Length => PageCount * PageSize;
}
