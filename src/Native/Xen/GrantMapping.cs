namespace XenBackends.Native.Xen;

/// <summary>
/// Pages of a foreign domain mapped through a <see cref="XenGrantMapper"/>. It holds a reference on
/// the mapper's gntdev handle, so it stays valid (and unmappable) even after the mapper is disposed;
/// the handle is closed when the last mapping goes.
/// </summary>
internal sealed class GrantMapping : SharedMemory
{
    private readonly GnttabHandle _handle;
    private readonly uint _pageCount;

    /// <summary>Takes over one reference the caller already added on <paramref name="handle"/>.</summary>
    public GrantMapping(GnttabHandle handle, nint address, uint pageCount)
        : base(address, checked((int)pageCount * XenGrantMapper.PageSize))
    {
        _handle = handle;
        _pageCount = pageCount;
    }

    public uint PageCount => _pageCount;

    protected override void Release()
    {
        try
        {
            // xengnttab_unmap needs the very count that was mapped.
            if (_handle.Library.Unmap(_handle.DangerousGetHandle(), Address, _pageCount, out int errno) != 0)
                throw XenErrno.GrantFailed("xengnttab_unmap", errno,
                    $"unmapping {_pageCount} grant page(s) at 0x{Address:x}");
        }
        finally
        {
            _handle.DangerousRelease();
        }
    }
}
