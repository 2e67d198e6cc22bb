using System.Runtime.InteropServices;

namespace XenBackends.Native.Xen;

/// <summary>
/// An open <c>xengnttab_handle</c>. Each live grant mapping holds a reference on it
/// (<see cref="SafeHandle.DangerousAddRef"/>), so <c>xengnttab_close</c> runs only after the mapper
/// is disposed AND every mapping made through it is unmapped.
/// </summary>
internal sealed class GnttabHandle : SafeHandle
{
    private readonly IXenGnttab _library;

    public GnttabHandle(IXenGnttab library, nint xgt) : base(0, ownsHandle: true)
    {
        _library = library;
        SetHandle(xgt);
    }

    public IXenGnttab Library => _library;

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => _library.Close(handle) == 0;
}
