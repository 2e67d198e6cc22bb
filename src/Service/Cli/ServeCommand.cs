using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using XenBackends.Service.Config;
using XenBackends.Service.Hosting;
using XenBackends.Service.Supervisor;
using XenBackends.Service.Systemd;

namespace XenBackends.Service.Cli;

/// <summary>`serve`: the supervisor under Microsoft.Extensions.Hosting.</summary>
internal static class ServeCommand
{
    public const int ExitBadConfig = 2;
    public const int ExitHostUnavailable = 3;

    public static async Task<int> RunAsync(string? configPath, HostSpec host, CancellationToken cancellationToken)
    {
        ServiceConfig config;
        try
        {
            config = ConfigLoader.Load(configPath);
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return ExitBadConfig;
        }
        using var app = Build(config, host, WorkerCommand.ForThisProcess());
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (HostUnavailableException e)
        {
            await Console.Error.WriteLineAsync("xen-backends: cannot start: " + e.Message).ConfigureAwait(false);
            return ExitHostUnavailable;
        }
        await app.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
        return Environment.ExitCode;
    }

    /// <summary>
    /// Readiness, status and watchdog come from <see cref="SdNotifier"/> rather than the package's
    /// SystemdLifetime: READY=1 must follow the first xenstore scan and the watchdog must follow the
    /// supervisor loop's health. The package still decides the log format (journald's &lt;N&gt; priority prefixes).
    /// </summary>
    /// <param name="logging">For `sim`: replaces the console logging (kept off its progress display) and the console lifetime (the demo owns Ctrl+C and the teardown order); null for `serve`.</param>
    public static IHost Build(ServiceConfig config, HostSpec host, WorkerCommand command, Action<ILoggingBuilder>? logging = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, Args = [] });
        builder.Logging.ClearProviders();
        if (logging is not null)
        {
            logging(builder.Logging);
            builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        }
        else if (SystemdHelpers.IsSystemdService() || Environment.GetEnvironmentVariable("JOURNAL_STREAM") is not null)
            builder.Logging.AddSystemdConsole();
        else
            builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        // A failed start is reported once, by us, with its fixes; the host would add a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.Services.AddSingleton(config);
        builder.Services.AddSingleton(host);
        builder.Services.AddSingleton(command);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(_ => SdNotifier.FromEnvironment());
        builder.Services.AddSingleton<SupervisorHealth>();
        builder.Services.AddHostedService<SupervisorService>();
        builder.Services.AddHostedService<WatchdogService>();
        return builder.Build();
    }
}
