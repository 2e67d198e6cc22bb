using System.Runtime.InteropServices;
using XenBackends.Service.Config;
using XenBackends.Service.Hosting;
using XenBackends.Service.Worker;

namespace XenBackends.Service.Cli;

/// <summary>`worker`: started by the supervisor only. Stops on SIGTERM/SIGINT or when stdin closes.</summary>
internal static class WorkerCommandLine
{
    public static async Task<int> RunAsync(uint domid, HostSpec host)
    {
        string? json = Environment.GetEnvironmentVariable(WorkerOptions.ConfigVariable);
        if (json is null)
        {
            await Console.Error.WriteLineAsync($"the worker is started by `xen-backends serve`, which passes the configuration in {WorkerOptions.ConfigVariable}").ConfigureAwait(false);
            return ServeCommand.ExitBadConfig;
        }
        ServiceConfig config;
        try
        {
            config = ConfigLoader.Parse(json, WorkerOptions.ConfigVariable);
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return ServeCommand.ExitBadConfig;
        }
        using var stop = new CancellationTokenSource();
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        _ = Task.Run(async () =>
        {
            // The supervisor holds our stdin: EOF means it closed it (stop) or died (stop too: nobody supervises us).
            var buffer = new byte[64];
            using var stdin = Console.OpenStandardInput();
            while (await stdin.ReadAsync(buffer).ConfigureAwait(false) > 0) { }
            await stop.CancelAsync().ConfigureAwait(false);
        });
        return await WorkerRunner.RunAsync(new WorkerOptions(domid, host, config), Console.Out, Console.Error, stop.Token).ConfigureAwait(false);
    }
}
