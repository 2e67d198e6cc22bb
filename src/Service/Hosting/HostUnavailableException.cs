namespace XenBackends.Service.Hosting;

/// <summary>The host cannot be used at all (no Xen, xenstored down); the message says what to do.</summary>
public sealed class HostUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
