namespace XenBackends.SimulatedHost.XenStore;

/// <summary>Aborts one request with an XS_ERROR reply carrying <see cref="ErrnoName"/>; the connection lives on.</summary>
internal sealed class XsError(string errnoName) : Exception(errnoName)
{
    public string ErrnoName { get; } = errnoName;
}
