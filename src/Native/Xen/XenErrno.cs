using System.Runtime.InteropServices;
using Tmds.Linux;

namespace XenBackends.Native.Xen;

/// <summary>
/// Turns an errno left by a Xen library call into an exception that names the call, says what was
/// being done, gives the system's text for the errno and, for the errnos an operator can act on,
/// what to do about it.
/// </summary>
internal static class XenErrno
{
    /// <summary>The device node exists but the library could not open it.</summary>
    public static XenNativeException OpenFailed(string operation, string devicePath, int errno) =>
        new(operation, errno, Text($"cannot open {devicePath}", errno, OpenHint(errno, devicePath)));

    public static XenNativeException CallFailed(string operation, int errno, string doing) =>
        new(operation, errno, Text(doing, errno, CallHint(errno)));

    public static GrantException GrantFailed(string operation, int errno, string doing) =>
        new(operation, errno, Text(doing, errno, GrantHint(errno)));

    private static string Text(string doing, int errno, string? hint)
    {
        string text = $"{doing}: {Marshal.GetPInvokeErrorMessage(errno)}";
        return hint is null ? text : $"{text} ({hint})";
    }

    private static string? OpenHint(int errno, string devicePath)
    {
        if (errno == LibC.EACCES || errno == LibC.EPERM)
            return $"the service needs root or read-write access to {devicePath}";
        if (errno == LibC.ENOENT)
            return "the Xen device node is missing: not running in a Xen dom0, or the driver is not loaded";
        if (errno == LibC.ENODEV || errno == LibC.ENXIO)
            return "the device node exists but no Xen driver is behind it";
        if (errno == LibC.EMFILE || errno == LibC.ENFILE)
            return "out of file descriptors";
        return null;
    }

    private static string? CallHint(int errno)
    {
        if (errno == LibC.ENOTTY)
            return "the descriptor is not a Xen device";
        if (errno == LibC.EFBIG)
            return "the kernel's event ring overflowed and events were lost: every ring must be rescanned";
        if (errno == LibC.EINVAL)
            return "the port or domain is not valid for this handle";
        if (errno == LibC.EPERM || errno == LibC.EACCES)
            return "not permitted (is the handle restricted to another domain?)";
        return null;
    }

    private static string? GrantHint(int errno)
    {
        if (errno == LibC.ENOMEM || errno == LibC.ENOSPC)
            return "too many grants mapped: unmap some or raise the gntdev limit";
        if (errno == LibC.EINVAL)
            return "the guest's grant reference, domain or access mode was refused";
        if (errno == LibC.EFAULT)
            return "a local address in the request is not mapped";
        if (errno == LibC.EPERM || errno == LibC.EACCES)
            return "not permitted: a read-only grant mapped writable, or the grant belongs to another domain";
        if (errno == LibC.ENOTTY)
            return "the descriptor is not the Xen gntdev device";
        return null;
    }
}
