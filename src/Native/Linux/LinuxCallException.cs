using System.Runtime.InteropServices;
using Tmds.Linux;

namespace XenBackends.Native.Linux;

/// <summary>
/// A Linux system call made for the simulated host or the fd plumbing failed. It derives from
/// <see cref="XenNativeException"/> so callers that already handle "a native call failed" need no new catch.
/// </summary>
public sealed class LinuxCallException(string operation, int errno)
    : XenNativeException(operation, errno, Marshal.GetPInvokeErrorMessage(errno))
{
    /// <summary>Captures errno right after a failed call; call it before anything else can overwrite it.</summary>
    internal static LinuxCallException FromErrno(string operation) => new(operation, LibC.errno);
}
