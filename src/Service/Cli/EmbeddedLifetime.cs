using Microsoft.Extensions.Hosting;

namespace XenBackends.Service.Cli;

/// <summary>
/// The host lifetime when the service runs inside `sim`: the demo owns Ctrl+C and stops the service
/// itself after destroying its guest, so the console lifetime must not stop the workers under it first.
/// </summary>
internal sealed class EmbeddedLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
