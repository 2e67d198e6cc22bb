namespace XenBackends.Native.Xen;

/// <summary>
/// The libxenevtchn calls <see cref="XenEventChannels"/> makes, each handing back the errno it left;
/// a seam so the pending/mask/wait logic can be tested without Xen. <see cref="LibXenEvtchn"/> is the
/// only production implementation.
/// </summary>
internal interface IXenEvtchn
{
    /// <summary><c>xenevtchn_open(NULL, 0)</c>: the handle, or 0 with <paramref name="errno"/>.</summary>
    nint Open(out int errno);

    int Close(nint xce);

    /// <summary>The pollable descriptor the handle owns (closed by <see cref="Close"/>).</summary>
    int Fd(nint xce);

    /// <summary>The local port, or -1 with <paramref name="errno"/>.</summary>
    int BindInterdomain(nint xce, uint domid, uint remotePort, out int errno);

    int Notify(nint xce, uint port, out int errno);

    /// <summary>The next pending (now masked) port, or -1 with <paramref name="errno"/>. Blocks unless polled first.</summary>
    int Pending(nint xce, out int errno);

    int Unmask(nint xce, uint port, out int errno);

    int Unbind(nint xce, uint port, out int errno);
}
