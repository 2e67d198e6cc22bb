using System.Runtime.InteropServices;

namespace XenBackends.Native.Xen;

/// <summary>
/// Keeps a SafeHandle's native handle alive for the length of one native call, so a Dispose racing
/// with the call cannot free the handle under it (the call then sees ObjectDisposedException instead).
/// </summary>
internal readonly ref struct HandleLease
{
    private readonly SafeHandle _handle;

    public HandleLease(SafeHandle handle, object owner)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            throw new ObjectDisposedException(owner.GetType().Name);
        }
        _handle = handle;
        Pointer = handle.DangerousGetHandle();
    }

    public nint Pointer { get; }

    public void Dispose() => _handle.DangerousRelease();
}
