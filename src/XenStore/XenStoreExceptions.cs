namespace XenBackends.XenStore;

/// <summary>Base of every error this client raises, so callers can catch "anything xenstore" in one place.</summary>
public class XenStoreException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The daemon answered XS_ERROR with <c>E&lt;NAME&gt;</c>; the request reached it and was refused.</summary>
public sealed class XenStoreErrorException(string operation, string path, string errnoName)
    : XenStoreException($"xenstore {operation} {path}: {errnoName} (errno {XsErrno.NumberOf(errnoName)})")
{
    public string Operation { get; } = operation;
    public string Path { get; } = path;
    /// <summary>The name as the daemon sent it, e.g. "ENOENT".</summary>
    public string ErrnoName { get; } = errnoName;
    /// <summary>x86_64 errno for <see cref="ErrnoName"/>; 0 for names outside xsd_errors.</summary>
    public int Errno { get; } = XsErrno.NumberOf(errnoName);
}

/// <summary>
/// The connection is unusable (daemon gone, or it broke the protocol). Every pending and later request
/// fails with this, so nothing waits forever on a dead daemon.
/// </summary>
public sealed class XenStoreConnectionException(string message, Exception? inner = null) : XenStoreException(message, inner);

/// <summary>No reply within the per-request timeout; the connection itself stays usable.</summary>
public sealed class XenStoreTimeoutException(string message) : XenStoreException(message);

/// <summary>A transaction kept failing with EAGAIN until the retry bound ran out.</summary>
public sealed class XenStoreTransactionConflictException(int attempts)
    : XenStoreException($"xenstore transaction still conflicted (EAGAIN) after {attempts} attempts; giving up")
{
    public int Attempts { get; } = attempts;
}
