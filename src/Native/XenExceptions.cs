namespace XenBackends.Native;

/// <summary>The machine is not a Xen dom0 (or lacks the device nodes and libraries a backend needs).</summary>
public sealed class XenUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A hypervisor-interface call failed with an errno; the message names the call and the errno.</summary>
public class XenNativeException(string operation, int errno, string message)
    : Exception($"{operation} failed: {message} (errno {errno})")
{
    public string Operation { get; } = operation;
    public int Errno { get; } = errno;
}

/// <summary>A grant could not be mapped or copied; <see cref="Status"/> is a <see cref="GrantStatus"/> value when known.</summary>
public sealed class GrantException(string operation, int errno, string message, short status = GrantStatus.GeneralError)
    : XenNativeException(operation, errno, message)
{
    public short Status { get; } = status;
}
