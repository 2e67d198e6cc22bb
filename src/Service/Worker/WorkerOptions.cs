using XenBackends.Service.Config;
using XenBackends.Service.Hosting;

namespace XenBackends.Service.Worker;

/// <summary>What the supervisor tells a worker: which guest, which host, which configuration.</summary>
/// <remarks>The configuration travels as JSON in <see cref="ConfigVariable"/> so every worker runs with the exact document the supervisor validated, even if the file changed since.</remarks>
public sealed record WorkerOptions(uint Domid, HostSpec Host, ServiceConfig Config)
{
    public const string ConfigVariable = "XEN_BACKENDS_CONFIG";
}
