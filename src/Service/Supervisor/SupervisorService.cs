using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using XenBackends.Service.Config;
using XenBackends.Service.Control;
using XenBackends.Service.Hosting;
using XenBackends.Service.Metrics;
using XenBackends.Service.Systemd;

namespace XenBackends.Service.Supervisor;

/// <summary>
/// Hosts the supervisor with its control socket and metrics endpoint. StartAsync returns only once
/// workers for the existing guests are started, which is when READY=1 goes out.
/// </summary>
internal sealed class SupervisorService(
    ServiceConfig config, HostSpec host, WorkerCommand command, SdNotifier notifier, SupervisorHealth health,
    ILoggerFactory loggers, IHostApplicationLifetime lifetime, TimeProvider time) : IHostedService
{
    private readonly ILogger _logger = loggers.CreateLogger("xen-backends");
    private Supervisor? _supervisor;
    private ControlServer? _control;
    private MetricsServer? _metrics;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _supervisor = new Supervisor(config, host, command, _logger, notifier, health, time);
        await _supervisor.StartAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _control = new ControlServer(config.ControlSocket, _supervisor.Snapshot, _logger);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException)
        {
            throw new HostUnavailableException($"cannot create the control socket {config.ControlSocket}: {e.Message}", e);
        }
        if (config.Metrics.Enabled)
        {
            ConfigValidator.TryParseLoopback(config.Metrics.Listen, out var endPoint, out _);
            try
            {
                _metrics = new MetricsServer(endPoint, _supervisor.Snapshot, _logger);
                _logger.LogInformation("metrics on http://{EndPoint}/metrics", _metrics.EndPoint);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                throw new HostUnavailableException($"cannot listen for metrics on {config.Metrics.Listen}: {e.Message} (change metrics.listen or set metrics.enabled to false)", e);
            }
        }
        _ = WatchCompletionAsync(_supervisor);
    }

    private async Task WatchCompletionAsync(Supervisor supervisor)
    {
        try
        {
            await supervisor.Completion.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _logger.LogCritical("the supervisor stopped: {Message}", e.Message);
            Environment.ExitCode = 1;
            lifetime.StopApplication();
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        notifier.Notify("STOPPING=1");
        if (_metrics is not null) await _metrics.DisposeAsync().ConfigureAwait(false);
        if (_control is not null) await _control.DisposeAsync().ConfigureAwait(false);
        if (_supervisor is not null) await _supervisor.DisposeAsync().ConfigureAwait(false);
    }
}
