using System.Runtime.InteropServices;

namespace XenBackends.Native.Xen;

/// <summary>An open <c>xenevtchn_handle</c>; closing it also closes its pollable fd.</summary>
internal sealed class EvtchnHandle : SafeHandle
{
    private readonly IXenEvtchn _library;

    public EvtchnHandle(IXenEvtchn library, nint xce) : base(0, ownsHandle: true)
    {
        _library = library;
        SetHandle(xce);
    }

    public IXenEvtchn Library => _library;

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => _library.Close(handle) == 0;
}
